package engine

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sfPair makes a DB with `now` rows and a backup of it taken when it had
// `then` rows.
func sfPair(t *testing.T, then, now int) (db, bak string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "tenant.db")
	sfSimpleDB(t, db, then)
	bak, err := Backup(context.Background(), db, BackupOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h := sfOpen(t, db)
	for i := then; i < now; i++ {
		sfExec(t, h, "INSERT INTO t(v) VALUES ('new')")
	}
	h.Close()
	return db, bak
}

func sfRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The backup replaces the DB by rename (new inode, exact bytes, no temp
// files left) and the replaced DB is kept and returned.
func TestRestoreReplacesAndKeeps(t *testing.T) {
	db, bak := sfPair(t, 3, 7)
	oldSt, _ := os.Stat(db)
	replaced, err := Restore(context.Background(), db, bak, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sfCount(t, db, "t"); got != 3 {
		t.Fatalf("restored DB has %d rows, want 3", got)
	}
	if !bytes.Equal(sfRead(t, db), sfRead(t, bak)) {
		t.Fatal("restored DB is not byte-identical to the backup")
	}
	newSt, _ := os.Stat(db)
	if os.SameFile(oldSt, newSt) {
		t.Fatal("DB was rewritten in place, not renamed over")
	}
	if replaced == "" || filepath.Dir(replaced) != filepath.Dir(db) {
		t.Fatalf("replaced kept at %q", replaced)
	}
	if got := sfCount(t, replaced, "t"); got != 7 {
		t.Fatalf("kept replaced DB has %d rows, want 7", got)
	}
	for _, n := range sfLs(t, filepath.Dir(db)) {
		if strings.Contains(n, "tmp") {
			t.Fatalf("left behind: %s", n)
		}
	}
	// Restoring onto a missing file creates it and replaces nothing.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	r, err := Restore(context.Background(), fresh, bak, RestoreOptions{})
	if err != nil || r != "" || sfCount(t, fresh, "t") != 3 {
		t.Fatalf("restore to missing file: %q %v", r, err)
	}
}

// A WAL DB: the replaced copy includes rows only in its -wal, the old
// -wal/-shm are gone and their content does not leak into the restored DB.
func TestRestoreWALDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	h := sfOpen(t, db)
	h.SetMaxOpenConns(1)
	sfExec(t, h, "PRAGMA journal_mode=WAL")
	sfExec(t, h, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	sfExec(t, h, "INSERT INTO t(v) VALUES ('a')")
	bak, err := Backup(context.Background(), db, BackupOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sfExec(t, h, "PRAGMA wal_autocheckpoint=0")
	for i := 0; i < 50; i++ {
		sfExec(t, h, "INSERT INTO t(v) VALUES ('wal only')")
	}
	h.Close() // last connection: SQLite checkpoints; put a stale -wal back by hand
	// Build a stale -wal: a second DB state written into a WAL we keep.
	h = sfOpen(t, db)
	h.SetMaxOpenConns(1)
	sfExec(t, h, "PRAGMA wal_autocheckpoint=0")
	sfExec(t, h, "CREATE TABLE stale(x)")
	walCopy := sfRead(t, db+"-wal")
	h.Close()
	os.WriteFile(db+"-wal", walCopy, 0o644)

	replaced, err := Restore(context.Background(), db, bak, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(db + s); err == nil {
			t.Fatalf("stale %s left beside the restored DB", s)
		}
	}
	if got := sfCount(t, replaced, "t"); got != 51 {
		t.Fatalf("replaced copy has %d rows, want 51", got)
	}
	// Opened normally (not immutable): must be the backup, no stale table.
	h = sfOpen(t, db)
	var n int
	if err := h.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name='stale'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("stale WAL content leaked into the restored DB: %d %v", n, err)
	}
	if err := h.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("restored DB has %d rows (%v), want 1", n, err)
	}
}

// Another connection holding BEGIN IMMEDIATE: refused, DB byte-identical,
// no kept copy left behind.
func TestRestoreRefusedWhileWriteLocked(t *testing.T) {
	db, bak := sfPair(t, 3, 5)
	h := sfOpen(t, db)
	conn, err := h.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sfExec(t, conn, "BEGIN IMMEDIATE")
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	before := sfRead(t, db)
	os.WriteFile(db+".shoal-lock", nil, 0o644) // the lock file may be created; it is never removed
	files := sfLs(t, filepath.Dir(db))
	start := time.Now()
	_, err = Restore(context.Background(), db, bak, RestoreOptions{BusyTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrRestore) || !errors.Is(err, ErrLocked) {
		t.Fatalf("want ErrRestore+ErrLocked, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("waited far longer than the busy timeout")
	}
	if !bytes.Equal(before, sfRead(t, db)) {
		t.Fatal("DB changed")
	}
	if got := sfLs(t, filepath.Dir(db)); strings.Join(got, ",") != strings.Join(files, ",") {
		t.Fatalf("files changed: %v -> %v", files, got)
	}
}

// A migrator holding the lock file: refused, DB byte-identical.
func TestRestoreRefusedWhileMigratorLock(t *testing.T) {
	db, bak := sfPair(t, 3, 5)
	f, err := os.OpenFile(db+".shoal-lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	before := sfRead(t, db)
	_, err = Restore(context.Background(), db, bak, RestoreOptions{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "migrator") {
		t.Fatalf("want ErrLocked naming the migrator, got %v", err)
	}
	if !bytes.Equal(before, sfRead(t, db)) {
		t.Fatal("DB changed")
	}
}

// A corrupt backup or a file that is not a database: refused, DB
// byte-identical, nothing written.
func TestRestoreRefusesCorruptBackup(t *testing.T) {
	db, bak := sfPair(t, 200, 201)
	bad := filepath.Join(t.TempDir(), "bad.bak")
	b := sfRead(t, bak)
	copy(b[4096+8:], strings.Repeat("\xff", 64))
	os.WriteFile(bad, b, 0o644)
	notdb := filepath.Join(t.TempDir(), "notdb.bak")
	os.WriteFile(notdb, []byte(strings.Repeat("hello world\n", 1000)), 0o644)
	before := sfRead(t, db)
	files := sfLs(t, filepath.Dir(db))
	for _, p := range []string{bad, notdb} {
		_, err := Restore(context.Background(), db, p, RestoreOptions{})
		if !errors.Is(err, ErrRestore) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: want ErrRestore+ErrCorrupt naming the backup, got %v", p, err)
		}
		if !bytes.Equal(before, sfRead(t, db)) {
			t.Fatal("DB changed")
		}
		if got := sfLs(t, filepath.Dir(db)); strings.Join(got, ",") != strings.Join(files, ",") {
			t.Fatalf("files changed: %v -> %v", files, got)
		}
	}
	if _, err := Restore(context.Background(), db, filepath.Join(t.TempDir(), "none.bak"), RestoreOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing backup: %v", err)
	}
}

// Restoring over a DB SQLite cannot read keeps a raw copy of it.
func TestRestoreOverCorruptDB(t *testing.T) {
	db, bak := sfPair(t, 3, 3)
	junk := []byte(strings.Repeat("junk", 2000))
	os.WriteFile(db, junk, 0o644)
	replaced, err := Restore(context.Background(), db, bak, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sfRead(t, replaced), junk) {
		t.Fatal("the replaced file was not kept byte for byte")
	}
	if sfCount(t, db, "t") != 3 {
		t.Fatal("not restored")
	}
}

// An interrupted-step marker belongs to the replaced DB: cleared, and its
// snapshot removed, so the next migration does not undo the restore.
func TestRestoreClearsStepMarker(t *testing.T) {
	db, bak := sfPair(t, 3, 5)
	snap := db + ".shoal-snapshot"
	os.WriteFile(snap, []byte("x"), 0o644)
	os.WriteFile(db+".shoal-lock", []byte(fmt.Sprintf("step 4 up %s\n", snap)), 0o644)
	if _, err := Restore(context.Background(), db, bak, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if b := sfRead(t, db+".shoal-lock"); len(b) != 0 {
		t.Fatalf("marker left: %q", b)
	}
	if _, err := os.Stat(snap); err == nil {
		t.Fatal("snapshot of the replaced DB left")
	}
}

// Another process with the WAL DB open (idle, no transaction): refused.
func TestRestoreRefusedWhileOtherProcessHasWALOpen(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	h := sfOpen(t, db)
	sfExec(t, h, "PRAGMA journal_mode=WAL")
	sfExec(t, h, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	bak, err := Backup(context.Background(), db, BackupOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSfHelperProcess$")
	cmd.Env = append(os.Environ(), "SHOAL_SF_HELPER_DB="+db)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("helper: %q %v", line, err)
	}
	before := sfRead(t, db)
	_, err = Restore(context.Background(), db, bak, RestoreOptions{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("want ErrLocked naming pid %d, got %v", cmd.Process.Pid, err)
	}
	if !bytes.Equal(before, sfRead(t, db)) {
		t.Fatal("DB changed")
	}
	for _, n := range sfLs(t, dir) {
		if strings.HasSuffix(n, ".bak") {
			t.Fatalf("kept copy left after refusal: %s", n)
		}
	}
}

// TestSfHelperProcess is not a test: run by the test above as another
// process that keeps a WAL DB open until its stdin closes.
func TestSfHelperProcess(t *testing.T) {
	p := os.Getenv("SHOAL_SF_HELPER_DB")
	if p == "" {
		t.Skip("helper process only")
	}
	db, err := sql.Open("sqlite", safetyDSN(p, "_pragma=busy_timeout(30000)"))
	if err != nil {
		os.Exit(3)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		os.Exit(4)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	db.Close()
	os.Exit(0)
}

// An error after the rename (here: the directory fsync) must not delete the
// kept copy of the replaced database: it is the only copy left.
func TestRestoreErrorAfterRenameKeepsReplaced(t *testing.T) {
	db, bak := sfPair(t, 3, 7)
	snap := db + ".shoal-snapshot"
	os.WriteFile(snap, []byte("x"), 0o644)
	os.WriteFile(db+".shoal-lock", []byte(fmt.Sprintf("step 4 up %s\n", snap)), 0o644)
	restoreSyncDir = func(string) error { return errors.New("injected fsync failure") }
	t.Cleanup(func() { restoreSyncDir = syncDir })
	replaced, err := Restore(context.Background(), db, bak, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "could not be fsynced") {
		t.Fatalf("want the fsync error, got %v", err)
	}
	if replaced == "" || !strings.Contains(err.Error(), replaced) {
		t.Fatalf("the kept copy %q is not returned and named in the error: %v", replaced, err)
	}
	// The marker is about the replaced DB: cleared even though the fsync
	// failed, or the next migration would roll the restore back.
	if b := sfRead(t, db+".shoal-lock"); len(b) != 0 {
		t.Fatalf("marker left: %q", b)
	}
	if got := sfCount(t, replaced, "t"); got != 7 {
		t.Fatalf("kept replaced DB has %d rows, want 7", got)
	}
	if got := sfCount(t, db, "t"); got != 3 {
		t.Fatalf("restored DB has %d rows, want 3", got)
	}
}

// A live WAL database passed as BACKUP: its latest commits are only in its
// -wal, which a file copy would silently leave out. Refused, DB untouched.
func TestRestoreRefusesLiveWALBackup(t *testing.T) {
	db, _ := sfPair(t, 3, 3)
	before := sfRead(t, db)
	live := filepath.Join(t.TempDir(), "live.db")
	h := sfOpen(t, live)
	h.SetMaxOpenConns(1)
	sfExec(t, h, "PRAGMA journal_mode=WAL")
	sfExec(t, h, "PRAGMA wal_autocheckpoint=0")
	sfExec(t, h, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	sfExec(t, h, "INSERT INTO t(v) VALUES ('only in the wal')")
	_, err := Restore(context.Background(), db, live, RestoreOptions{})
	if err == nil || !errors.Is(err, ErrRestore) || !strings.Contains(err.Error(), "-wal") {
		t.Fatalf("want a refusal naming the -wal, got %v", err)
	}
	if !bytes.Equal(sfRead(t, db), before) {
		t.Fatal("DB changed")
	}
}

// A marker naming a snapshot that is not this database's own (a moved
// directory, a hand-edited lock file) is cleared, but that file is not
// deleted: it may be another database's snapshot.
func TestRestoreKeepsForeignSnapshot(t *testing.T) {
	db, bak := sfPair(t, 3, 5)
	other := filepath.Join(t.TempDir(), "other.db.shoal-snapshot")
	os.WriteFile(other, []byte("someone else's snapshot"), 0o644)
	os.WriteFile(db+".shoal-lock", []byte(fmt.Sprintf("step 4 up %s\n", other)), 0o644)
	if _, err := Restore(context.Background(), db, bak, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if b := sfRead(t, db+".shoal-lock"); len(b) != 0 {
		t.Fatalf("marker left: %q", b)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("another file named by the marker was deleted: %v", err)
	}
}
