package engine

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Scripts run in place: `python3 FILE DB` with FILE the migration file
// itself, from its own directory, so a script finds the files beside it.
func TestScriptRunsInPlace(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "0001_t.sql"), []byte("CREATE TABLE people (name TEXT, age INTEGER);"), 0o644)
	os.WriteFile(filepath.Join(d, "people.csv"), []byte("ann,31\nbob,42\n"), 0o644)
	os.WriteFile(filepath.Join(d, "0002_load.py"), []byte(`import csv, os, sqlite3, sys
here = os.path.dirname(os.path.abspath(__file__))
assert os.getcwd() == here, (os.getcwd(), here)
assert os.path.abspath(sys.argv[0]) == os.path.join(here, "0002_load.py"), sys.argv[0]
db = sqlite3.connect(sys.argv[1])
with open(os.path.join(os.path.dirname(__file__), "people.csv")) as f:
    db.executemany("INSERT INTO people VALUES (?, ?)", csv.reader(f))
db.commit()
`), 0o644)
	fsys, err := OpenDir(d)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Dir: fsys, DirName: d})
	if err != nil {
		t.Fatal(err)
	}
	p := tempDB(t)
	t.Chdir(t.TempDir()) // the caller's working directory does not matter
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	var n int
	sqlOpen(t, p).QueryRow("SELECT count(*) FROM people").Scan(&n)
	if n != 2 {
		t.Fatalf("%d rows loaded from the CSV beside the script", n)
	}
}

// A script edited after shoal loaded the directory is not run: its bytes no
// longer have the loaded checksum. The DB is unchanged.
func TestScriptChangedSinceLoadNotRun(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "0001_t.sql"), []byte("CREATE TABLE t (x);"), 0o644)
	script := filepath.Join(d, "0002_s.sh")
	os.WriteFile(script, []byte("echo loaded\n"), 0o644)
	fsys, _ := OpenDir(d)
	e, err := New(Options{Dir: fsys, DirName: d})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(script, []byte("echo swapped > \"$1.swapped\"\n"), 0o644)
	p := tempDB(t)
	_, err = e.Migrate(ctx(t), p, MigrateOptions{})
	if !errors.Is(err, ErrMigration) || !errors.Is(err, errScriptChanged) || !strings.Contains(err.Error(), script) {
		t.Fatalf("want the changed script refused, got %v", err)
	}
	if v := appliedVersion(t, p); v != 1 {
		t.Fatalf("version %d", v)
	}
	if _, err := os.Stat(p + stepCopySuffix + ".swapped"); err == nil {
		t.Fatal("the changed script ran")
	}
}

// A migration with no file on disk (an embedded fs.FS) runs from a private
// temporary copy: mode 0600 in a 0700 directory, which is also its working
// directory, removed afterwards.
func TestEmbeddedScriptRunsFromPrivateCopy(t *testing.T) {
	files := map[string]string{"0001_t.sql": "CREATE TABLE t (x);",
		"0002_s.sh": "stat -c '%a' \"$0\"\nstat -c '%a' \"$(dirname \"$0\")\"\n[ \"$(pwd)\" = \"$(dirname \"$0\")\" ] && echo cwd-ok\nbasename \"$0\"\necho \"$0\" > \"$SHOAL_TENANT_DB.script\"\n"}
	p := tempDB(t)
	e := newEngine(t, files)
	_, err := e.Migrate(ctx(t), p, MigrateOptions{To: 1})
	if err != nil {
		t.Fatal(err)
	}
	files["0002_s.sh"] += "exit 1\n"
	_, err = newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("want the step's failure, got %v", err)
	}
	if got := strings.Fields(me.Output); len(got) != 4 || got[0] != "600" || got[1] != "700" || got[2] != "cwd-ok" || got[3] != "0002_s.sh" {
		t.Fatalf("script copy: %q", me.Output)
	}
	where := strings.TrimSpace(string(fileBytes(t, p+".script")))
	if _, err := os.Stat(filepath.Dir(where)); !os.IsNotExist(err) {
		t.Fatalf("temporary directory %s left behind", filepath.Dir(where))
	}
}

// A symlink planted at DB.shoal-lock is never followed: migrate and restore
// refuse with ErrSideFile naming it, never print the target's bytes, never
// truncate it. A FIFO or a directory there is refused the same way.
func TestLockFileSymlinkRefused(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	const content = "TOP-SECRET-BYTES step 1 up /etc/passwd"
	os.WriteFile(secret, []byte(content), 0o644)
	files := map[string]string{"0001_t.sql": "CREATE TABLE t (x);"}

	p := tempDB(t)
	if err := os.Symlink(secret, lockPath(p)); err != nil {
		t.Fatal(err)
	}
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	if !errors.Is(err, ErrSideFile) || !strings.Contains(err.Error(), lockPath(p)) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("migrate: want ErrSideFile naming the lock file without its content, got %v", err)
	}

	// Restore over an existing DB with a planted lock symlink.
	q := tempDB(t)
	if _, err := newEngine(t, files).Migrate(ctx(t), q, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	bak, err := Backup(ctx(t), q, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(lockPath(q))
	if err := os.Symlink(secret, lockPath(q)); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(ctx(t), q, bak, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), lockPath(q)) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("restore: want a refusal naming the lock file, got %v", err)
	}
	if got := string(fileBytes(t, secret)); got != content {
		t.Fatalf("the symlink's target was changed: %q", got)
	}

	for name, plant := range map[string]func(string) error{
		"fifo":      func(f string) error { return syscall.Mkfifo(f, 0o644) },
		"directory": func(f string) error { return os.Mkdir(f, 0o755) },
	} {
		r := tempDB(t)
		if err := plant(lockPath(r)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := newEngine(t, files).Migrate(ctx(t), r, MigrateOptions{}); done <- err }()
		select {
		case err := <-done:
			if name == "fifo" && !errors.Is(err, ErrSideFile) {
				t.Fatalf("%s: want ErrSideFile, got %v", name, err)
			}
			if err == nil {
				t.Fatalf("%s at the lock path accepted", name)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s at the lock path blocked migrate", name)
		}
	}
}

// Backups and the restore's copies of a 0600 DB are never wider than 0600.
func TestCopiesKeepDBPermissions(t *testing.T) {
	p := tempDB(t)
	if _, err := newEngine(t, map[string]string{"0001_t.sql": "CREATE TABLE t (x);"}).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o600)
	bakDir := t.TempDir()
	bak, err := Backup(ctx(t), p, BackupOptions{Dir: bakDir})
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(bak); fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup of a 0600 DB is %v", fi.Mode().Perm())
	}
	kept, err := Restore(ctx(t), p, bak, RestoreOptions{Backup: BackupOptions{Dir: bakDir}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{kept, p} {
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s is %v after restoring a 0600 DB", f, fi.Mode().Perm())
		}
	}
}

// Temporary files left by a killed backup (.bak-tmp) or restore
// (.restore-tmp) are removed by the next run on that DB or backup
// directory; one still held by a live process (flock) and other tenants'
// are left alone.
func TestTempLeftoversRemoved(t *testing.T) {
	p := tempDB(t)
	dbDir := filepath.Dir(p)
	files := map[string]string{"0001_t.sql": "CREATE TABLE t (x);", "0002_u.sql": "CREATE TABLE u (x);"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	plant := func(dir, name string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte("tenant data"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	gone := []string{
		plant(dbDir, ".tenant.db.123456.restore-tmp"),
		plant(dbDir, ".tenant.db.777.bak-tmp"),
	}
	kept := []string{plant(dbDir, ".tenant.db2.5.bak-tmp"), plant(dbDir, ".tenant.db.x.5.restore-tmp")}
	held := plant(dbDir, ".tenant.db.999.restore-tmp")
	hf, _ := os.Open(held)
	defer hf.Close()
	if err := syscall.Flock(int(hf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, held)
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A backup directory.
	bakDir := t.TempDir()
	gone = append(gone, plant(bakDir, ".tenant.db.4242.bak-tmp"))
	if _, err := Backup(ctx(t), p, BackupOptions{Dir: bakDir}); err != nil {
		t.Fatal(err)
	}
	// A restore.
	gone = append(gone, plant(dbDir, ".tenant.db.31337.restore-tmp"))
	bak, err := Backup(ctx(t), p, BackupOptions{Dir: bakDir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx(t), p, bak, RestoreOptions{Backup: BackupOptions{Dir: bakDir}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range gone {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
	for _, f := range kept {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s removed: %v", f, err)
		}
	}
}

// kill -9 of a backup with its temporary copy of the tenant written: the
// file is left (its flock dies with the process), and the next backup into
// that directory removes it.
func TestKilledBackupLeftoverRemovedByNextBackup(t *testing.T) {
	p := tempDB(t)
	if _, err := newEngine(t, map[string]string{"0001_t.sql": "CREATE TABLE t (x); INSERT INTO t VALUES (1);"}).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	bakDir := t.TempDir()
	for trial := range trials(t, 1) {
		paused := filepath.Join(t.TempDir(), "paused")
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SHOAL_TEST_HELPER=backup", "SHOAL_TEST_DB="+p, "SHOAL_TEST_BAKDIR="+bakDir, "SHOAL_TEST_PAUSED="+paused)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		var tmp []byte
		for {
			if b, err := os.ReadFile(paused); err == nil && len(b) > 0 {
				tmp = b
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("the backup never paused")
			}
			time.Sleep(time.Millisecond) // polling for the pause, not for timing
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if _, err := os.Stat(string(tmp)); err != nil {
			t.Fatalf("trial %d: the killed backup left no temporary file to clean: %v", trial, err)
		}
		if _, err := Backup(ctx(t), p, BackupOptions{Dir: bakDir}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(string(tmp)); err == nil {
			t.Fatalf("trial %d: %s left behind by the next backup", trial, tmp)
		}
	}
}

// Shoal's own raw reads of a DB file (the header) never drop the POSIX
// locks its SQLite connections hold: with a WAL connection open, another
// process closing its last connection must not take the DB for unused and
// delete the -wal and -shm under it. The control shows what a plain close
// of a raw descriptor does.
func TestRawReadKeepsSQLiteLocks(t *testing.T) {
	for _, control := range []bool{false, true} {
		p := tempDB(t)
		appBase(t, p, true, map[string]string{"0001_app.sql": appTable})
		release := sqliteInUse(p)
		db, _ := openDB(p, time.Second, false)
		conn, err := db.Conn(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx(t), "INSERT INTO app (v) VALUES ('shoal')"); err != nil {
			t.Fatal(err)
		}
		if control {
			f, _ := os.Open(p)
			f.Close()
		} else if _, err := inspectFile(p); err != nil {
			t.Fatal(err)
		}
		// An application process (Python's own SQLite) opens, commits and
		// closes its only connection.
		start := time.Now()
		out, err := exec.Command("python3", "-c", `import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("INSERT INTO app (v) VALUES ('app')")
db.commit()
db.close()`, p).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Logf("control=%v: the application process took %s", control, time.Since(start))
		_, walErr := os.Stat(p + "-wal")
		conn.Close()
		db.Close()
		release()
		if control {
			if walErr == nil {
				t.Log("control: the -wal survived a raw close (locks not dropped on this system)")
			}
			continue
		}
		if walErr != nil {
			t.Fatalf("the other process deleted the -wal under shoal's open connection: %v", walErr)
		}
	}
}
