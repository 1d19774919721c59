package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A script that writes to the DB and then exits 1 leaves the DB exactly as
// before the step; its output is in the error; the next good run applies it once.
func TestScriptFailureLeavesDBUnchanged(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, p)
	files["0002_s.py"] = `import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO a VALUES (2)")
db.execute("CREATE TABLE junk (y)")
db.commit()
print("wrote rows, now failing")
sys.exit(1)
`
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) || me.File != "0002_s.py" || !strings.Contains(me.Output, "now failing") {
		t.Fatalf("want the script's failure with its output, got %v", err)
	}
	if after := dump(t, p); after != before {
		t.Fatalf("script failure not undone:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !strings.Contains(err.Error(), "the database was not changed") {
		t.Fatalf("the error does not say the DB was not changed: %v", err)
	}
	for _, side := range []string{snapshotSuffix, stepCopySuffix} {
		if _, err := os.Stat(p + side); !os.IsNotExist(err) {
			t.Fatalf("%s left behind", side)
		}
	}
	files["0002_s.py"] = `import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO a VALUES (2)")
db.commit()
`
	res, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	db := sqlOpen(t, p)
	var n int
	db.QueryRow("SELECT count(*) FROM a WHERE x = 2").Scan(&n)
	if n != 1 {
		t.Fatalf("script applied %d times, want once", n)
	}
}

// A shell script that runs past the script timeout is killed and undone.
func TestScriptTimeoutKilledDBUnchanged(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_slow.sh": "echo started\nsleep 30\n"}
	e, err := New(Options{Dir: dir(files), DirName: "test", ScriptTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = e.Migrate(ctx(t), p, MigrateOptions{})
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a timeout, got %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("the script was not killed at its timeout")
	}
	if got := history(t, p); len(got) != 1 {
		t.Fatalf("history %v", got)
	}
}

// A transaction:false section that fails half-way is undone from its snapshot.
func TestNoTxStepFailureLeavesDBUnchanged(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);",
		"0002_b.sql": "-- migrate:up transaction:false\nINSERT INTO a VALUES (2);\nCREATE TABLE b (y);\nINSERT INTO nosuch VALUES (1);\n",
	}
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) || me.Statement != 3 {
		t.Fatalf("want statement 3 to fail, got %v", err)
	}
	// 0001 committed in its own segment; 0002's partial writes are gone.
	db := sqlOpen(t, p)
	var rows, b int
	db.QueryRow("SELECT count(*) FROM a").Scan(&rows)
	db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'b'").Scan(&b)
	if rows != 1 || b != 0 {
		t.Fatalf("partial transaction:false step survived: rows %d, table b %d", rows, b)
	}
	if h := history(t, p); len(h) != 1 || h[0] != 1 {
		t.Fatalf("history %v", h)
	}
}

// A marker of an earlier shoal (which ran steps on the live DB under a
// snapshot) whose step is not in history: the snapshot is NOT restored over
// the DB (that would destroy every write committed since): the DB is left
// as it is, the snapshot kept, and runs are refused with ErrInterruptedStep
// saying what happened and how to resolve it. Restoring the snapshot with
// Restore (the operator's choice) clears the marker; the step then applies once.
func TestLegacySnapshotMarkerRefusedNotRestored(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "-- migrate:up transaction:false\nINSERT INTO a VALUES (2);\n"}
	e := newEngine(t, files)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	// Simulate the old design's crash: snapshot + marker, the step's write
	// on the live DB, death; then the application commits a row.
	db, _ := openDB(p, time.Second, false)
	conn, _ := db.Conn(ctx(t))
	lk, err := acquireLock(ctx(t), p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := filepath.Abs(p + snapshotSuffix)
	if err := takeSnapshot(ctx(t), conn, snap, time.Second); err != nil {
		t.Fatal(err)
	}
	lk.setMarker(stepMarker{Version: 2, Snapshot: snap})
	conn.ExecContext(ctx(t), "INSERT INTO a VALUES (2)")
	conn.Close()
	db.Close()
	lk.release()
	execAll(t, p, "INSERT INTO a VALUES (100)") // the application's commit
	before := dump(t, p)

	for _, run := range []func() error{
		func() error { _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); return err },
		func() error { _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{To: 1}); return err },
		func() error { _, err := newEngine(t, files).Down(ctx(t), p, 0); return err },
	} {
		err := run()
		if !errors.Is(err, ErrInterruptedStep) || !IsRefusal(err) {
			t.Fatalf("want ErrInterruptedStep, got %v", err)
		}
		for _, want := range []string{"version 2", snap, "shoal restore", "discard"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error does not say %q: %v", want, err)
			}
		}
		if after := dump(t, p); after != before {
			t.Fatalf("the refused DB changed:\n%s", after)
		}
		if _, err := os.Stat(snap); err != nil {
			t.Fatal("the snapshot was not kept")
		}
	}
	// The operator chooses to go back to the snapshot.
	if _, err := Restore(ctx(t), p, snap, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	var n int
	sqlOpen(t, p).QueryRow("SELECT count(*) FROM a WHERE x = 2").Scan(&n)
	if n != 1 {
		t.Fatalf("step applied %d times after the restore", n)
	}
}

// A marker of this design (the step ran on a private copy) left by a killed
// migrator: the next run deletes the copy and its side files and clears the
// marker, restores nothing, then applies the step once.
func TestInterruptedCopyStepCleanedByNextRun(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "-- migrate:up transaction:false\nINSERT INTO a VALUES (2);\n"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	execAll(t, p, "INSERT INTO a VALUES (100)")
	cp, _ := filepath.Abs(p + stepCopySuffix)
	for _, f := range []string{cp, cp + "-journal", cp + "-wal"} {
		os.WriteFile(f, []byte("half a copy"), 0o600)
	}
	lk, err := acquireLock(ctx(t), p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lk.setMarker(stepMarker{Version: 2, Copy: cp})
	lk.release()
	res, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	var n, app int
	db := sqlOpen(t, p)
	db.QueryRow("SELECT count(*) FROM a WHERE x = 2").Scan(&n)
	db.QueryRow("SELECT count(*) FROM a WHERE x = 100").Scan(&app)
	if n != 1 || app != 1 {
		t.Fatalf("step rows %d, application rows %d", n, app)
	}
	for _, f := range []string{cp, cp + "-journal", cp + "-wal"} {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("%s left behind", f)
		}
	}
	if fi, _ := os.Stat(lockPath(p)); fi.Size() != 0 {
		t.Fatal("marker not cleared")
	}
}

// The step marker names the copy by an absolute path, so a run started from
// another working directory can still find it; the script gets the copy as
// its argument and in SHOAL_DB, and the live DB in SHOAL_TENANT_DB.
func TestStepMarkerCopyPathIsAbsolute(t *testing.T) {
	d := t.TempDir()
	t.Chdir(d)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);",
		"0002_peek.sh": "cat \"$SHOAL_TENANT_DB.shoal-lock\"\necho \"$1\"\necho \"$SHOAL_DB\"\necho \"$SHOAL_TENANT_DB\"\nexit 1\n"}
	_, err := newEngine(t, files).Migrate(ctx(t), "t.db", MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("want the step's failure, got %v", err)
	}
	cp := filepath.Join(d, "t.db"+stepCopySuffix)
	want := "copy 2 up " + cp + "\n" + cp + "\n" + cp + "\n" + filepath.Join(d, "t.db")
	if strings.TrimSpace(me.Output) != want {
		t.Fatalf("during the step: %q, want %q", me.Output, want)
	}
}
