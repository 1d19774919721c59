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
func TestScriptFailureRestoresSnapshot(t *testing.T) {
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
	var me *MigrationError
	if !errors.As(err, &me) || me.File != "0002_s.py" || !strings.Contains(me.Output, "now failing") {
		t.Fatalf("want the script's failure with its output, got %v", err)
	}
	if after := dump(t, p); after != before {
		t.Fatalf("script failure not undone:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(p + snapshotSuffix); !os.IsNotExist(err) {
		t.Fatal("snapshot left behind")
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
func TestScriptTimeoutKillsAndRestores(t *testing.T) {
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
func TestNoTxStepFailureRestores(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);",
		"0002_b.sql": "-- migrate:up transaction:false\nINSERT INTO a VALUES (2);\nCREATE TABLE b (y);\nINSERT INTO nosuch VALUES (1);\n",
	}
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *MigrationError
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

// A step whose migrator died (marker left in the lock file, DB half-written)
// is undone by the next run before anything else, then applied once.
func TestInterruptedStepRecoveredByNextRun(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "-- migrate:up transaction:false\nINSERT INTO a VALUES (2);\n"}
	e := newEngine(t, files)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	// Simulate the crash: snapshot + marker, then the step's write, then death.
	db, _ := openDB(p, time.Second, false)
	conn, _ := db.Conn(ctx(t))
	lk, err := acquireLock(ctx(t), p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	snap := p + snapshotSuffix
	if err := takeSnapshot(ctx(t), conn, snap, time.Second); err != nil {
		t.Fatal(err)
	}
	lk.setMarker(stepMarker{Version: 2, Snapshot: snap})
	conn.ExecContext(ctx(t), "INSERT INTO a VALUES (2)")
	conn.Close()
	db.Close()
	lk.release()

	res, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	check := sqlOpen(t, p)
	var n int
	check.QueryRow("SELECT count(*) FROM a").Scan(&n)
	if n != 1 {
		t.Fatalf("rows %d: the interrupted step's write was not undone before the step ran again", n)
	}
}

// The step marker names the snapshot by an absolute path, so a run started
// from another working directory can still restore it. The step itself
// reads the marker while it runs.
func TestStepMarkerSnapshotPathIsAbsolute(t *testing.T) {
	d := t.TempDir()
	t.Chdir(d)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_peek.sh": "cat \"$1.shoal-lock\"\nexit 1\n"}
	_, err := newEngine(t, files).Migrate(ctx(t), "t.db", MigrateOptions{})
	var me *MigrationError
	if !errors.As(err, &me) {
		t.Fatalf("want the step's failure, got %v", err)
	}
	want := "step 2 up " + filepath.Join(d, "t.db"+snapshotSuffix)
	if strings.TrimSpace(me.Output) != want {
		t.Fatalf("marker during the step: %q, want %q", me.Output, want)
	}
}
