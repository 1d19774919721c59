package engine

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// ---- transaction control (issue 11 item 3) ----

func TestTxControlRefusedAtLoad(t *testing.T) {
	for _, tc := range []struct{ name, body, word string }{
		{"begin", "CREATE TABLE a (x);\nBEGIN;\nINSERT INTO a VALUES (1);", "BEGIN"},
		{"begin immediate", "BEGIN IMMEDIATE TRANSACTION;\nCREATE TABLE a (x);", "BEGIN"},
		{"commit", "CREATE TABLE a (x);\nINSERT INTO a VALUES (1);\nCOMMIT;\nINSERT INTO a VALUES (2);", "COMMIT"},
		{"commit lower", "create table a (x);\n  commit transaction ;", "COMMIT"},
		{"end", "CREATE TABLE a (x);\nEND;", "END"},
		{"rollback", "CREATE TABLE a (x);\nROLLBACK;", "ROLLBACK"},
		{"rollback to", "SAVEPOINT s;\nCREATE TABLE a (x);\nROLLBACK TO s;", "SAVEPOINT"},
		{"savepoint", "CREATE TABLE a (x);\nSAVEPOINT sp1;", "SAVEPOINT"},
		{"release", "CREATE TABLE a (x);\nRELEASE sp1;", "RELEASE"},
		{"after comment", "CREATE TABLE a (x);\n-- the end\n/* done */ COMMIT;", "COMMIT"},
		{"down section", "-- migrate:up\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\nCOMMIT;", "COMMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Dir: dir(map[string]string{"0001_a.sql": "CREATE TABLE z (x);", "0002_b.sql": tc.body}), DirName: "migs"})
			var de *DirError
			if !errors.Is(err, ErrTxControl) || !errors.Is(err, ErrInvalidDir) || !errors.As(err, &de) || de.File != "0002_b.sql" {
				t.Fatalf("want ErrTxControl naming 0002_b.sql, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.word) || !strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), "transaction:false") {
				t.Fatalf("message does not say which statement, where and what to do: %v", err)
			}
		})
	}
	// The line is the statement's.
	_, err := New(Options{Dir: dir(map[string]string{"0001_a.sql": "CREATE TABLE a (x);\n\nINSERT INTO a VALUES (1);\n  COMMIT;\n"}), DirName: "migs"})
	if err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("want line 4, got %v", err)
	}
}

func TestTxControlWordsThatAreNotStatementsPass(t *testing.T) {
	for name, body := range map[string]string{
		"trigger body": `CREATE TABLE a (x, changed);
CREATE TRIGGER a_touch AFTER UPDATE ON a BEGIN
  UPDATE a SET changed = 1 WHERE rowid = new.rowid;
END;
CREATE TEMP TRIGGER IF NOT EXISTS t2 AFTER INSERT ON a BEGIN SELECT 1; END;`,
		"strings":            "CREATE TABLE a (x);\nINSERT INTO a VALUES ('COMMIT;'), ('BEGIN'), ('ROLLBACK; END;');",
		"comments":           "-- COMMIT;\n/* ROLLBACK; */\nCREATE TABLE a (x); -- END;\n",
		"identifiers":        "CREATE TABLE \"commit\" (\"begin\", [end], `rollback`, release_at, savepoint_id);\nINSERT INTO \"commit\" (\"begin\") VALUES (1);",
		"column named begin": "CREATE TABLE a (begin INTEGER, end INTEGER);\nSELECT begin, end FROM a;",
		"case expression":    "CREATE TABLE a (x);\nSELECT CASE WHEN x THEN 1 ELSE 0 END FROM a;",
	} {
		t.Run(name, func(t *testing.T) {
			e, err := New(Options{Dir: dir(map[string]string{"0001_a.sql": body}), DirName: "migs"})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if _, err := e.Migrate(ctx(t), tempDB(t), MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A transaction:false section may keep them.
	if _, err := New(Options{Dir: dir(map[string]string{"0001_a.sql": "-- migrate:up transaction:false\nBEGIN;\nCREATE TABLE a (x);\nCOMMIT;\n"}), DirName: "migs"}); err != nil {
		t.Fatalf("transaction:false section refused: %v", err)
	}
}

// Defence in depth: a migration that ends the run's transaction at run time
// (here a Go migration, which no loader reads) fails its segment cleanly,
// and nothing of the segment is committed.
func TestTxEndedAtRunTimeFailsSegment(t *testing.T) {
	for _, stmt := range []string{"COMMIT", "END", "ROLLBACK"} {
		t.Run(stmt, func(t *testing.T) {
			p := tempDB(t)
			files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);"}
			if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
			before := dump(t, p)
			files["0002_b.sql"] = "INSERT INTO a VALUES (1);"
			e, err := New(Options{Dir: dir(files), DirName: "migs", Go: []GoMigration{{Version: 3, Name: "tx", Up: func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO a VALUES (2)"); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, stmt)
				if err == nil {
					_, err = tx.ExecContext(ctx, "INSERT INTO a VALUES (3)")
				}
				return err
			}}}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Migrate(ctx(t), p, MigrateOptions{})
			if !errors.Is(err, ErrTxControl) || !errors.Is(err, ErrMigration) {
				t.Fatalf("want ErrTxControl, got %v", err)
			}
			if after := dump(t, p); after != before {
				t.Fatalf("part of the segment was committed:\n%s", after)
			}
			// A later run without the culprit applies 2 exactly once.
			delete(files, "0003")
			if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
				t.Fatal(err)
			}
			var n int
			sqlOpen(t, p).QueryRow("SELECT count(*) FROM a").Scan(&n)
			if n != 1 {
				t.Fatalf("%d rows, want 1", n)
			}
		})
	}
}

// ---- one wait budget per run (issue 11 item 7) ----

// With the write lock held by another connection (EXCLUSIVE: readers wait
// too) and the migrator lock held by another migrator, every wait of a run
// together takes about one busy timeout, not one per wait.
func TestBusyTimeoutIsOneBudget(t *testing.T) {
	const timeout = time.Second // long enough that scheduling noise is small against it
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	files["0002_b.sql"] = "CREATE TABLE b (x);"
	e, err := New(Options{Dir: dir(files), DirName: "migs", BusyTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	holder := sqlOpen(t, p)
	c, err := holder.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	lk, err := acquireLock(ctx(t), p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.release()
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"migrate", func() error { _, err := e.Migrate(ctx(t), p, MigrateOptions{}); return err }},
		{"status", func() error { _, err := e.Status(ctx(t), p); return err }},
		{"version", func() error { _, err := e.Version(ctx(t), p); return err }},
	} {
		start := time.Now()
		err := op.run()
		ratio := float64(time.Since(start)) / float64(timeout)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("%s: want ErrLocked, got %v", op.name, err)
		}
		if ratio > 1.5 {
			t.Fatalf("%s waited %.2f times the busy timeout: %v", op.name, ratio, err)
		}
		t.Logf("%s: waited %.2f x the busy timeout: %v", op.name, ratio, err)
	}
	// The migrator lock then the SQLite write lock (another connection's
	// BEGIN IMMEDIATE) in one run: still one budget.
	c.ExecContext(context.Background(), "ROLLBACK")
	if _, err := c.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	lk.release()
	start := time.Now()
	_, err = e.Migrate(ctx(t), p, MigrateOptions{})
	if ratio := float64(time.Since(start)) / float64(timeout); !errors.Is(err, ErrLocked) || ratio > 1.5 {
		t.Fatalf("BEGIN IMMEDIATE: %.2f x, %v", ratio, err)
	}
}

// ---- disk full (issue 11 item 7) ----

func TestDiskFullSaysSo(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x); INSERT INTO a VALUES (1);"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	files["0002_fill.sql"] = `CREATE TABLE big (s TEXT);
PRAGMA max_page_count = 8;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000)
INSERT INTO big SELECT hex(randomblob(100)) FROM c;`
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.Is(err, ErrDiskFull) || !errors.As(err, &me) || me.File != "0002_fill.sql" {
		t.Fatalf("want ErrDiskFull naming the migration, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"disk full", p, "free", filepath.Dir(p)} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "quick_check") || strings.Contains(msg, "fix the migration") || errors.Is(err, ErrTxControl) {
		t.Fatalf("message gives the wrong advice: %s", msg)
	}
}

// ---- directory refusals (issue 12 items 4, 8 and minor) ----

func TestUnversionedFileRefused(t *testing.T) {
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x);", "add_notes.sql": "CREATE TABLE notes (x);"}
	_, err := New(Options{Dir: dir(files), DirName: "migs"})
	var de *DirError
	if !errors.Is(err, ErrUnversioned) || !errors.As(err, &de) || de.File != "add_notes.sql" ||
		!strings.Contains(err.Error(), "0003_add_notes.sql") {
		t.Fatalf("want ErrUnversioned suggesting 0003_add_notes.sql, got %v", err)
	}
	for _, name := range []string{"fix.sh", "load.py", "Seed.SQL"} {
		_, err := New(Options{Dir: dir(map[string]string{"0001_a.sql": "SELECT 1;", name: "x"}), DirName: "migs"})
		if !errors.Is(err, ErrUnversioned) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: want ErrUnversioned, got %v", name, err)
		}
	}
	// Not migrations by their names: still ignored.
	fsys := fstest.MapFS{"0001_a.sql": mapFile("SELECT 1;"), "README.md": mapFile("x"), "schema.sql": mapFile("x"),
		SumFile: mapFile(""), ".hidden.sql": mapFile("x"), "notes.txt": mapFile("x"), "lib/helper.py": mapFile("x")}
	if _, err := New(Options{Dir: fsys, DirName: "migs"}); err != nil {
		t.Fatal(err)
	}
	// check fails, naming it: schema.TestCheckNamesUnversionedFile.
}

func TestDuplicateVersionMessages(t *testing.T) {
	_, err := New(Options{Dir: dir(map[string]string{"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"}), DirName: "migs"})
	if !errors.Is(err, ErrDuplicateVersion) || !strings.Contains(err.Error(), "shoal renumber") {
		t.Fatalf("want a renumber hint, got %v", err)
	}
	// Another tool's layout: the same error kind, and no renumber (it
	// renames only shoal's own files); a Go migration clashing with a file
	// is found the same way in both.
	_, err = New(Options{Dir: dir(map[string]string{"V1__a.sql": "SELECT 1;", "V1.0__b.sql": "SELECT 2;"}), DirName: "migs"})
	if !errors.Is(err, ErrDuplicateVersion) || strings.Contains(err.Error(), "renumber") {
		t.Fatalf("flyway duplicate: %v", err)
	}
	up := func(context.Context, *sql.Tx) error { return nil }
	_, err = New(Options{Dir: dir(map[string]string{"1_a.up.sql": "SELECT 1;", "1_a.down.sql": "SELECT 1;"}), Go: []GoMigration{{Version: 1, Name: "g", Up: up}}})
	if !errors.Is(err, ErrDuplicateVersion) {
		t.Fatalf("go migration clashing with a golang-migrate file: %v", err)
	}
}

// The template of `shoal new` loads (so `shoal new` can run again) but is
// never applied: migrate refuses, naming the file, creating nothing.
func TestEmptyMigrationRefused(t *testing.T) {
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_add_users.sql": "-- migrate:up\n\n\n-- migrate:down\n\n"}
	e := newEngine(t, files)
	p := tempDB(t)
	_, err := e.Migrate(ctx(t), p, MigrateOptions{})
	if !errors.Is(err, ErrEmptyMigration) || !strings.Contains(err.Error(), "0002_add_users.sql") {
		t.Fatalf("want ErrEmptyMigration naming the file, got %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("the refused run created the file")
	}
	// Up to the version before it is fine; the empty one stays pending.
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); !errors.Is(err, ErrEmptyMigration) {
		t.Fatalf("want ErrEmptyMigration, got %v", err)
	}
	if h := history(t, p); len(h) != 1 {
		t.Fatalf("history %v", h)
	}
}

// ---- --to (issue 12 item 5) ----

func TestTargetMustBeAVersion(t *testing.T) {
	e := newEngine(t, map[string]string{"0010_a.sql": "CREATE TABLE a (x);", "0020_b.sql": "CREATE TABLE b (x);"})
	p := tempDB(t)
	_, err := e.Migrate(ctx(t), p, MigrateOptions{To: 99})
	if !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), "head is 20") {
		t.Fatalf("--to above head: %v", err)
	}
	_, err = e.Migrate(ctx(t), p, MigrateOptions{To: 15})
	if !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), "0010_a.sql") || !strings.Contains(err.Error(), "0020_b.sql") || !strings.Contains(err.Error(), "--to 10") {
		t.Fatalf("--to between versions: %v", err)
	}
	_, err = e.Migrate(ctx(t), p, MigrateOptions{To: 5, DryRun: true})
	if !errors.Is(err, ErrBadTarget) {
		t.Fatalf("--to below the first version: %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("a refused target created the file")
	}
	if res, err := e.Migrate(ctx(t), p, MigrateOptions{To: 10}); err != nil || res.To != 10 {
		t.Fatalf("--to 10: %+v %v", res, err)
	}
}

// ---- status and first runs (issue 12 minor) ----

func TestStatusShowsChangedMigrations(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_b.sql": "CREATE TABLE b (x);", "0003_c.sql": "CREATE TABLE c (x);"}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{To: 2}); err != nil {
		t.Fatal(err)
	}
	files["0002_b.sql"] = "CREATE TABLE b (x, y);"
	e := newEngine(t, files)
	s, err := e.Status(ctx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 2 || s.Head != 3 || len(s.Pending) != 1 || len(s.Applied) != 2 || s.Applied[0].Changed || !s.Applied[1].Changed ||
		len(s.Changed) != 1 || s.Changed[0] != "0002_b.sql" || !s.Exists {
		t.Fatalf("%+v", s)
	}
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); !errors.Is(err, ErrChanged) {
		t.Fatalf("migrate must keep refusing: %v", err)
	}
}

func TestStatusMissingFile(t *testing.T) {
	p := tempDB(t)
	s, err := newEngine(t, basic).Status(ctx(t), p)
	if err != nil || s.Exists || s.Version != 0 || len(s.Pending) != 2 || s.Changed == nil {
		t.Fatalf("%+v %v", s, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 0 {
		t.Fatalf("status created %v", entries)
	}
}

// A failing first run on a fresh file leaves nothing that was not there and
// says the run was rolled back; a failing run on an existing file keeps it.
func TestFailedFirstRunLeavesNothing(t *testing.T) {
	for name, bad := range map[string]string{
		"transactional":     "INSERT INTO nope VALUES (1);",
		"transaction:false": "-- migrate:up transaction:false\nCREATE TABLE c (x);\nINSERT INTO nope VALUES (1);",
	} {
		t.Run(name, func(t *testing.T) {
			p := tempDB(t)
			files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);", "0002_bad.sql": bad}
			_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{PerMigration: false})
			var me *Error
			if !errors.As(err, &me) || me.File != "0002_bad.sql" {
				t.Fatalf("want the failure of 0002_bad.sql, got %v", err)
			}
			entries, _ := os.ReadDir(filepath.Dir(p))
			if name == "transactional" {
				if !me.Removed || !strings.Contains(err.Error(), "this run was rolled back") || strings.Contains(err.Error(), "before this step") {
					t.Fatalf("message: %v", err)
				}
				if len(entries) != 0 {
					t.Fatalf("left behind: %v", entries)
				}
				return
			}
			// 0001 committed in its own segment before the step: the
			// file stays, at version 1.
			if me.Removed || len(history(t, p)) != 1 {
				t.Fatalf("removed %v, history %v", me.Removed, history(t, p))
			}
		})
	}
	// Only the failing migration: nothing at all remains.
	p := tempDB(t)
	_, err := newEngine(t, map[string]string{"0001_bad.sql": "-- migrate:up transaction:false\nCREATE TABLE c (x);\nINSERT INTO nope VALUES (1);"}).Migrate(ctx(t), p, MigrateOptions{})
	if err == nil || !strings.Contains(err.Error(), "this run was rolled back") {
		t.Fatalf("%v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	// An existing DB is never removed, and its lock file stays.
	p = tempDB(t)
	execAll(t, p, "PRAGMA user_version = 0")
	os.WriteFile(p, nil, 0o644)
	_, err = newEngine(t, map[string]string{"0001_bad.sql": "INSERT INTO nope VALUES (1);"}).Migrate(ctx(t), p, MigrateOptions{})
	if err == nil || !strings.Contains(err.Error(), "this run was rolled back") || strings.Contains(err.Error(), "removed") {
		t.Fatalf("%v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal("an existing (empty) DB file was removed")
	}
}

// A migrator waiting on a lock file that a failed first run removes locks
// the new lock file, not the removed one: two migrators never hold the lock
// at once.
func TestRunLockFollowsRemovedLockFile(t *testing.T) {
	p := tempDB(t)
	first, err := acquireLock(ctx(t), p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *fileLock, 1)
	go func() {
		lk, err := acquireRunLock(context.Background(), p, newWaitBudget(30*time.Second))
		if err != nil {
			t.Error(err)
		}
		got <- lk
	}()
	// Wait until the waiter has the old lock file open.
	for openCount(t, lockPath(p)) < 2 {
		time.Sleep(time.Millisecond)
	}
	os.Remove(lockPath(p))
	first.release()
	lk := <-got
	defer lk.release()
	held, _ := lk.f.Stat()
	now, err := os.Lstat(lockPath(p))
	if err != nil || !os.SameFile(held, now) {
		t.Fatalf("the waiter holds a removed lock file: %v", err)
	}
	if third, err := acquireLock(ctx(t), p, 0); err == nil {
		third.release()
		t.Fatal("a third migrator got the lock while the waiter holds it")
	}
}

// openCount is how many descriptors of this process are open on path.
func openCount(t *testing.T, path string) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal("needs /proc/self/fd: ", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && target == path {
			n++
		}
	}
	return n
}

func TestDryRunOnFreshFileSaysWhatWouldHappen(t *testing.T) {
	p := tempDB(t)
	res, err := newEngine(t, basic).Migrate(ctx(t), p, MigrateOptions{DryRun: true})
	if err != nil || !res.DryRun || res.From != 0 || res.To != 2 || len(res.Pending) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("dry run created the file")
	}
}
