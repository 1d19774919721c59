package engine

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// A backup taken with a reuse key is reused by the same key while the DB
// is unchanged; a change to the DB, another key or a -journal beside the
// DB takes a new one.
func TestBackupReuse(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.db")
	sfSimpleDB(t, p, 3)
	ctx := context.Background()
	o := BackupOptions{ReuseKey: "run-1\x00job-1"}
	b1, err := Backup(ctx, p, o)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Backup(ctx, p, o)
	if err != nil {
		t.Fatal(err)
	}
	if b2 != b1 {
		t.Fatalf("retry took %s, want the first attempt's %s", b2, b1)
	}
	b3, err := Backup(ctx, p, BackupOptions{ReuseKey: "run-1\x00job-2"})
	if err != nil || b3 == b1 {
		t.Fatalf("another job reused the backup: %s %v", b3, err)
	}
	// The DB changed: a new backup, with the new row.
	db := sfOpen(t, p)
	sfExec(t, db, "INSERT INTO t(v) VALUES ('new')")
	db.Close()
	o.ReuseKey = "run-1\x00job-2"
	b4, err := Backup(ctx, p, o)
	if err != nil || b4 == b3 {
		t.Fatalf("a changed DB reused the backup: %s %v", b4, err)
	}
	if n := sfCount(t, b4, "t"); n != 4 {
		t.Fatalf("new backup has %d rows", n)
	}
	// A -journal beside the DB: only SQLite may judge the file.
	if err := os.WriteFile(p+"-journal", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b5, err := Backup(ctx, p, o)
	if err != nil || b5 == b4 {
		t.Fatalf("reused with a journal present: %s %v", b5, err)
	}
	// A sidecar that is a symlink is not followed.
	os.Remove(p + "-journal")
	side := sidecarPath(dir, "a.db")
	os.Remove(side)
	if err := os.Symlink(b5, side); err != nil {
		t.Fatal(err)
	}
	if got := reusableBackup(dir, p, o.ReuseKey); got != "" {
		t.Fatalf("reused through a symlinked sidecar: %s", got)
	}
}

// KeepFor deletes backups older than the age after a backup; the one just
// taken stays even when everything is old.
func TestBackupKeepFor(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.db")
	sfSimpleDB(t, p, 1)
	defer func() { backupNow = time.Now }()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var made []string
	for i := range 4 {
		ti := base.Add(time.Duration(i) * 24 * time.Hour)
		backupNow = func() time.Time { return ti }
		b, err := Backup(context.Background(), p, BackupOptions{KeepFor: 36 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, b)
	}
	for i, b := range made {
		_, err := os.Stat(b)
		if exists := err == nil; exists != (i >= 2) {
			t.Fatalf("backup %d (%s) exists=%v", i, b, exists)
		}
	}
}

// PruneTree applies keep and keep-for to every DB's backups in a tree,
// never deletes the newest of a DB nor other files, and a dry run deletes
// nothing.
func TestPruneTree(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	mk := func(rel string, age time.Duration, n int) string {
		name := backupName(filepath.Base(rel), now.Add(-age), n)
		p := filepath.Join(root, filepath.Dir(rel), name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, make([]byte, 10), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var want []string
	for i := range 6 { // a/app.db: 6 backups, one a day
		p := mk("a/app.db", time.Duration(i)*24*time.Hour, 0)
		if i >= 3 {
			want = append(want, p)
		}
	}
	old := mk("b/app.db", 90*24*time.Hour, 0) // b: only one, very old: kept (the newest)
	mk("b/app.db", 91*24*time.Hour, 0)
	want = append(want, filepath.Join(root, "b", backupName("app.db", now.Add(-91*24*time.Hour), 0)))
	other := filepath.Join(root, "a", "notes.txt")
	os.WriteFile(other, []byte("x"), 0o644)
	sort.Strings(want)

	st, err := PruneTree(root, PruneOptions{Keep: 3, KeepFor: 60 * 24 * time.Hour, DryRun: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	got := append([]string(nil), st.Deleted...)
	sort.Strings(got)
	if st.Databases != 2 || st.Backups != 8 || st.Bytes != 80 || len(got) != len(want) || st.DeletedBytes != int64(10*len(want)) {
		t.Fatalf("dry run %+v, want to delete %v", st, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("dry run deletes %v, want %v", got, want)
		}
		if _, err := os.Stat(want[i]); err != nil {
			t.Fatalf("dry run deleted %s", want[i])
		}
	}
	if _, err := PruneTree(root, PruneOptions{Keep: 3, KeepFor: 60 * 24 * time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s not deleted", p)
		}
	}
	for _, p := range []string{old, other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s deleted: %v", p, err)
		}
	}
	if n, b, err := BackupUsage(root); err != nil || n != 4 || b != 40 {
		t.Fatalf("usage %d %d %v", n, b, err)
	}
}
