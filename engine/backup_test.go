package engine

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sfOpen opens path read-write (creating it) for a test; closed at cleanup.
func sfOpen(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", safetyDSN(path, "_pragma=busy_timeout(30000)"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sfExec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// sfCount counts rows of table t in the file at path (opened immutable, so
// the file is only read).
func sfCount(t testing.TB, path, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", safetyDSN(path, "mode=ro&immutable=1"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s in %s: %v", table, path, err)
	}
	return n
}

// sfSimpleDB creates a rollback-journal DB with table t holding n rows and
// closes it.
func sfSimpleDB(t testing.TB, path string, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", safetyDSN(path, "_pragma=busy_timeout(30000)"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sfExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	for i := 0; i < n; i++ {
		sfExec(t, db, "INSERT INTO t(v) VALUES (?)", strings.Repeat("x", 50))
	}
}

func sfLs(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// Committed rows that are only in the -wal file (no checkpoint) are in the
// backup, and the backup keeps WAL mode in its header.
func TestBackupIncludesWAL(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tenant.db")
	db := sfOpen(t, p)
	db.SetMaxOpenConns(1)
	sfExec(t, db, "PRAGMA journal_mode=WAL")
	sfExec(t, db, "PRAGMA wal_autocheckpoint=0")
	sfExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	for i := 0; i < 100; i++ {
		sfExec(t, db, "INSERT INTO t(v) VALUES ('row')")
	}
	if st, err := os.Stat(p + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("expected a non-empty -wal: %v", err)
	}
	// The main file alone has no table t yet.
	raw := filepath.Join(dir, "raw.db")
	b, _ := os.ReadFile(p)
	os.WriteFile(raw, b, 0o644)
	if db2, _ := sql.Open("sqlite", safetyDSN(raw, "mode=ro&immutable=1")); db2 != nil {
		var n int
		if err := db2.QueryRow("SELECT count(*) FROM t").Scan(&n); err == nil {
			t.Fatalf("test setup: main file already has %d rows", n)
		}
		db2.Close()
	}

	bak, err := Backup(context.Background(), p, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sfCount(t, bak, "t"); got != 100 {
		t.Fatalf("backup has %d rows, want 100", got)
	}
	if filepath.Dir(bak) != dir {
		t.Fatalf("backup %s not beside the DB", bak)
	}
	if !strings.HasPrefix(filepath.Base(bak), "tenant.db.") || !strings.HasSuffix(bak, ".bak") {
		t.Fatalf("backup name %s", bak)
	}
	hdr, _ := os.ReadFile(bak)
	if hdr[18] != 2 || hdr[19] != 2 {
		t.Fatalf("backup lost WAL mode: header bytes %d %d", hdr[18], hdr[19])
	}
	for _, n := range sfLs(t, dir) {
		if strings.Contains(n, "tmp") || strings.HasSuffix(n, ".bak-journal") {
			t.Fatalf("left behind: %s", n)
		}
	}
}

// Two backups of one tenant at the same instant both exist.
func TestBackupNamesNeverCollide(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.db")
	sfSimpleDB(t, p, 3)
	fixed := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	backupNow = func() time.Time { return fixed }
	defer func() { backupNow = time.Now }()
	var names []string
	for i := 0; i < 3; i++ {
		b, err := Backup(context.Background(), p, BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(b))
	}
	want := []string{"a.db.20250102T030405.000000006.bak", "a.db.20250102T030405.000000006-1.bak", "a.db.20250102T030405.000000006-2.bak"}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("names %v, want %v", names, want)
		}
		if sfCount(t, filepath.Join(dir, names[i]), "t") != 3 {
			t.Fatalf("%s incomplete", names[i])
		}
	}
	// And with the real clock, back to back.
	backupNow = time.Now
	b1, err1 := Backup(context.Background(), p, BackupOptions{})
	b2, err2 := Backup(context.Background(), p, BackupOptions{})
	if err := errors.Join(err1, err2); err != nil || b1 == b2 {
		t.Fatalf("%s %s %v", b1, b2, err)
	}
}

// Dir+Root mirrors the tenant's path; Dir alone is flat.
func TestBackupMirrorAndFlat(t *testing.T) {
	root := t.TempDir()
	bdir := t.TempDir()
	p := filepath.Join(root, "acme", "eu", "tenant.db")
	os.MkdirAll(filepath.Dir(p), 0o755)
	sfSimpleDB(t, p, 1)
	b, err := Backup(context.Background(), p, BackupOptions{Dir: bdir, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filepath.Dir(b), filepath.Join(bdir, "acme", "eu"); got != want {
		t.Fatalf("mirrored into %s, want %s", got, want)
	}
	b, err = Backup(context.Background(), p, BackupOptions{Dir: bdir})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(b) != bdir {
		t.Fatalf("flat backup in %s", filepath.Dir(b))
	}
	// A DB outside the root is refused, nothing created.
	other := filepath.Join(t.TempDir(), "x.db")
	sfSimpleDB(t, other, 1)
	if _, err := Backup(context.Background(), other, BackupOptions{Dir: bdir, Root: root}); !errors.Is(err, ErrBackup) {
		t.Fatalf("outside root: %v", err)
	}
}

// Keep N keeps the newest N backups of that tenant only.
func TestBackupKeep(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.db")
	sfSimpleDB(t, p, 1)
	q := filepath.Join(dir, "a.db2") // another tenant whose name extends a.db
	sfSimpleDB(t, q, 1)
	qb, err := Backup(context.Background(), q, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	defer func() { backupNow = time.Now }()
	var made []string
	for i := 0; i < 5; i++ {
		ti := base.Add(time.Duration(i) * time.Second)
		backupNow = func() time.Time { return ti }
		b, err := Backup(context.Background(), p, BackupOptions{Keep: 2})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, b)
	}
	for i, b := range made {
		_, err := os.Stat(b)
		if exists := err == nil; exists != (i >= 3) {
			t.Fatalf("backup %d (%s) exists=%v", i, b, exists)
		}
	}
	if _, err := os.Stat(qb); err != nil {
		t.Fatalf("other tenant's backup deleted: %v", err)
	}
}

// A copy failing quick_check is deleted and reported as corrupt.
func TestBackupQuickCheckFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.db")
	sfSimpleDB(t, p, 200)
	// Damage the b-tree page of table t (page 2): page copying does not
	// notice, quick_check does.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int64(4096)
	garbage := []byte(strings.Repeat("\xff", 64))
	f.WriteAt(garbage, pageSize+8)
	f.Close()
	before := sfLs(t, dir)
	_, err = Backup(context.Background(), p, BackupOptions{})
	if !errors.Is(err, ErrBackup) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("want ErrBackup+ErrCorrupt, got %v", err)
	}
	if !strings.Contains(err.Error(), "bad.db") {
		t.Fatalf("error does not name the file: %v", err)
	}
	if after := sfLs(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("left behind: %v -> %v", before, after)
	}
}

// A missing DB is ErrNotFound and is not created.
func TestBackupMissingDB(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.db")
	if _, err := Backup(context.Background(), p, BackupOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("missing DB was created")
	}
}

// Missing backup dir, a backup dir under a regular file, an unwritable
// mirror target (a regular file where the mirrored directory must go, which
// fails even as root) and, when not root, a chmod 0555 dir: clear error,
// nothing left behind.
func TestBackupDirProblems(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "t1", "a.db")
	os.MkdirAll(filepath.Dir(p), 0o755)
	sfSimpleDB(t, p, 1)
	work := t.TempDir()
	file := filepath.Join(work, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	blocked := filepath.Join(work, "blocked")
	os.MkdirAll(blocked, 0o755)
	os.WriteFile(filepath.Join(blocked, "t1"), []byte("x"), 0o644) // where the mirror dir must go

	cases := []struct {
		name string
		o    BackupOptions
		want string
	}{
		{"missing", BackupOptions{Dir: filepath.Join(work, "nope")}, "does not exist"},
		{"under-file", BackupOptions{Dir: filepath.Join(file, "sub")}, "does not exist"},
		{"not-a-dir", BackupOptions{Dir: file}, "not a directory"},
		{"mirror-blocked", BackupOptions{Dir: blocked, Root: root}, "cannot create"},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(work, "ro")
		os.Mkdir(ro, 0o555)
		cases = append(cases, struct {
			name string
			o    BackupOptions
			want string
		}{"read-only", BackupOptions{Dir: ro}, "cannot write"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := sfTree(t, work)
			_, err := Backup(context.Background(), p, c.o)
			if !errors.Is(err, ErrBackup) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrBackup %q", err, c.want)
			}
			if after := sfTree(t, work); after != before {
				t.Fatalf("left behind:\n%s\n->\n%s", before, after)
			}
		})
	}
}

func sfTree(t testing.TB, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		b.WriteString(p + "\n")
		return nil
	})
	return b.String()
}

// A context cancelled before the copy leaves nothing behind.
func TestBackupCancelled(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.db")
	sfSimpleDB(t, p, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Backup(ctx, p, BackupOptions{}); err == nil {
		t.Fatal("no error")
	}
	if got := sfLs(t, dir); len(got) != 1 {
		t.Fatalf("left behind: %v", got)
	}
}
