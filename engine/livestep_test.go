package engine

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Steps that SQLite cannot roll back (scripts, transaction:false sections)
// run on a private copy and are brought back only if no other connection
// committed meanwhile: no committed write of an application is ever lost,
// whether the step succeeds, fails or its migrator is killed.

// helperWriter is an application process: it commits one row per
// transaction into app (v = SHOAL_TEST_TAG) with its own busy timeout,
// printing each committed id on stdout, until SHOAL_TEST_STOP exists or
// SHOAL_TEST_ROWS rows are committed.
func helperWriter() int {
	db, err := sql.Open("sqlite", dsn(os.Getenv("SHOAL_TEST_DB"), 60*time.Second, false))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	max, _ := strconv.Atoi(os.Getenv("SHOAL_TEST_ROWS"))
	stop := os.Getenv("SHOAL_TEST_STOP")
	out := bufio.NewWriter(os.Stdout)
	for n := 0; max == 0 || n < max; n++ {
		if stop != "" {
			if _, err := os.Stat(stop); err == nil {
				break
			}
		}
		r, err := db.Exec("INSERT INTO app (v) VALUES (?)", os.Getenv("SHOAL_TEST_TAG"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			return 1
		}
		id, _ := r.LastInsertId()
		fmt.Fprintln(out, id)
		out.Flush()
		time.Sleep(time.Millisecond) // pacing: an application writing steadily, not flat out
	}
	return 0
}

// writerProc is a running application writer process.
type writerProc struct {
	cmd   *exec.Cmd
	stop  string
	ids   chan int64
	done  chan []int64
	first chan struct{}
	err   *strings.Builder
}

// startWriter starts an application writer process on p (rows 0: until stopped).
func startWriter(t *testing.T, p, tag string, rows int) *writerProc {
	t.Helper()
	stop := filepath.Join(t.TempDir(), "stop")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHOAL_TEST_HELPER=writer", "SHOAL_TEST_DB="+p, "SHOAL_TEST_STOP="+stop,
		"SHOAL_TEST_TAG="+tag, "SHOAL_TEST_ROWS="+strconv.Itoa(rows))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &writerProc{cmd: cmd, stop: stop, done: make(chan []int64, 1), first: make(chan struct{}), err: &strings.Builder{}}
	cmd.Stderr = w.err
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		var ids []int64
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			id, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err == nil {
				if len(ids) == 0 {
					close(w.first)
				}
				ids = append(ids, id)
			}
		}
		io.Copy(io.Discard, stdout)
		w.done <- ids
	}()
	t.Cleanup(func() { w.cmd.Process.Kill() })
	return w
}

// waitFirst waits for the writer's first commit.
func (w *writerProc) waitFirst(t *testing.T) {
	t.Helper()
	select {
	case <-w.first:
	case <-time.After(time.Minute):
		t.Fatalf("the writer committed nothing: %s", w.err)
	}
}

// finish stops the writer and returns every id it reported committed.
func (w *writerProc) finish(t *testing.T) []int64 {
	t.Helper()
	if err := os.WriteFile(w.stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ids := <-w.done
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("writer: %v: %s", err, w.err)
	}
	return ids
}

// checkRows asserts every id is in app with tag, and integrity_check ok.
func checkRows(t *testing.T, p, tag string, ids []int64) {
	t.Helper()
	if len(ids) == 0 {
		t.Fatal("the writer committed no row")
	}
	db := sqlOpen(t, p)
	defer db.Close()
	var ic string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("integrity_check: %s %v", ic, err)
	}
	missing := 0
	for _, id := range ids {
		var v string
		if err := db.QueryRow("SELECT v FROM app WHERE id = ?", id).Scan(&v); err != nil || v != tag {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d rows the application committed are gone", missing, len(ids))
	}
}

// journalModes runs f in rollback-journal and in WAL mode.
func journalModes(t *testing.T, f func(t *testing.T, wal bool)) {
	for _, wal := range []bool{false, true} {
		name := "rollback"
		if wal {
			name = "wal"
		}
		t.Run(name, func(t *testing.T) { f(t, wal) })
	}
}

// appBase creates the app table (version 1) in the given journal mode.
func appBase(t *testing.T, p string, wal bool, files map[string]string) {
	t.Helper()
	if wal {
		execAll(t, p, "PRAGMA journal_mode = WAL")
	}
	if _, err := newEngine(t, map[string]string{"0001_app.sql": files["0001_app.sql"]}).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
}

const appTable = "CREATE TABLE app (id INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE TABLE b (i INTEGER);"

// slowStepMigrations: the app table and about 3 MB of filler (so that the
// copy-back takes several chunks), then a transaction:false step, then a
// quick migration. The helper process pauses inside the step or the
// copy-back on request (SHOAL_TEST_PAUSE_STEP, SHOAL_TEST_PAUSE_COPYBACK) so
// that kill -9 lands there.
func slowStepMigrations() map[string]string {
	return map[string]string{
		"0001_app.sql": appTable + `
CREATE TABLE filler (x BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) INSERT INTO filler SELECT randomblob(1000) FROM c;`,
		"0002_slow.sql": `-- migrate:up transaction:false
INSERT INTO b VALUES (-1);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000) INSERT INTO b SELECT i FROM c;
`,
		"0003_c.sql": "CREATE TABLE c (x);",
	}
}

// waitFor polls for a file a paused helper writes.
func waitFor(t *testing.T, cmd *exec.Cmd, f, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(f); err == nil {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(time.Millisecond) // polling for the helper's pause, not for timing
	}
}

// (a) kill -9 during a transaction:false step, then an application commits
// 50 rows, then the next migrate: all 50 rows present, the step applied
// exactly once, no copy left. (Today's main restored the snapshot: 0 of 50.)
func TestKilledStepNeverDestroysLaterCommits(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		for trial := range trials(t, 1) {
			p := tempDB(t)
			appBase(t, p, wal, slowStepMigrations())
			paused := filepath.Join(t.TempDir(), "paused")
			cmd := helperCmd("slowstep", p, false)
			cmd.Env = append(cmd.Env, "SHOAL_TEST_PAUSE_STEP="+paused)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, cmd, paused, "the step")
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			w := startWriter(t, p, "app", 50)
			ids := <-w.done
			if err := w.cmd.Wait(); err != nil || len(ids) != 50 {
				t.Fatalf("writer: %v, %d rows: %s", err, len(ids), w.err)
			}
			if v := appliedVersion(t, p); v != 1 {
				t.Fatalf("trial %d: killed mid-step, the DB is at version %d", trial, v)
			}
			res, err := newEngine(t, slowStepMigrations()).Migrate(ctx(t), p, MigrateOptions{})
			if err != nil || res.To != 3 {
				t.Fatalf("trial %d: next run: %+v %v", trial, res, err)
			}
			checkRows(t, p, "app", ids)
			var marks, rows int
			db := sqlOpen(t, p)
			db.QueryRow("SELECT count(*) FILTER (WHERE i = -1), count(*) FROM b").Scan(&marks, &rows)
			if marks != 1 || rows != 1001 {
				t.Fatalf("trial %d: step applied %d times (%d rows)", trial, marks, rows)
			}
			for _, side := range []string{stepCopySuffix, stepCopySuffix + "-journal", stepCopySuffix + "-wal", snapshotSuffix} {
				if _, err := os.Stat(p + side); err == nil {
					t.Fatalf("trial %d: %s left behind", trial, side)
				}
			}
		}
	})
}

// kill -9 in the middle of the copy-back (pages of the step already written
// into the live DB's transaction): SQLite rolls the copy-back back on the
// next open; the DB is intact at version 1 with every application row,
// and the next run applies the step exactly once.
func TestKilledCopyBackIsAtomic(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		p := tempDB(t)
		appBase(t, p, wal, slowStepMigrations())
		execAll(t, p, "INSERT INTO app (v) VALUES ('app')")
		paused := filepath.Join(t.TempDir(), "paused")
		cmd := helperCmd("slowstep", p, false)
		cmd.Env = append(cmd.Env, "SHOAL_TEST_PAUSE_COPYBACK="+paused)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, cmd, paused, "the copy-back")
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if wal {
			if fi, err := os.Stat(p + "-wal"); err != nil || fi.Size() == 0 {
				t.Fatalf("no WAL content from the interrupted copy-back: %v", err)
			}
		} else if fi, err := os.Stat(p + "-journal"); err != nil || fi.Size() == 0 {
			t.Fatalf("no hot journal from the interrupted copy-back: %v", err)
		}
		checkRows(t, p, "app", []int64{1})
		if v := appliedVersion(t, p); v != 1 {
			t.Fatalf("killed mid-copy-back, the DB is at version %d", v)
		}
		var rows int
		sqlOpen(t, p).QueryRow("SELECT count(*) FROM b").Scan(&rows)
		if rows != 0 {
			t.Fatalf("%d rows of the interrupted step visible", rows)
		}
		if _, err := newEngine(t, slowStepMigrations()).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
			t.Fatal(err)
		}
		sqlOpen(t, p).QueryRow("SELECT count(*) FROM b").Scan(&rows)
		if rows != 1001 || appliedVersion(t, p) != 3 {
			t.Fatalf("after the next run: %d step rows, version %d", rows, appliedVersion(t, p))
		}
		checkRows(t, p, "app", []int64{1})
	})
}

// (b) A .py step that commits, sleeps, commits and exits 1 while an
// application process commits throughout: every committed row present, the
// step's rows absent, the error says the DB was not changed.
func TestFailingScriptStepKeepsConcurrentCommits(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		for range trials(t, 1) {
			p := tempDB(t)
			files := map[string]string{"0001_app.sql": appTable, "0002_s.py": `import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO b VALUES (1)")
db.commit()
time.sleep(0.3)
db.execute("INSERT INTO b VALUES (2)")
db.commit()
print("wrote, now failing")
sys.exit(1)
`}
			appBase(t, p, wal, files)
			w := startWriter(t, p, "app", 0)
			w.waitFirst(t)
			_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
			ids := w.finish(t)
			var me *Error
			if !errors.As(err, &me) || me.File != "0002_s.py" || !strings.Contains(err.Error(), "the database was not changed") {
				t.Fatalf("want the script's failure saying the DB was not changed, got %v", err)
			}
			checkRows(t, p, "app", ids)
			var n int
			sqlOpen(t, p).QueryRow("SELECT count(*) FROM b").Scan(&n)
			if n != 0 || appliedVersion(t, p) != 1 {
				t.Fatalf("the failed step left %d rows, version %d", n, appliedVersion(t, p))
			}
			t.Logf("%d rows committed by the application during the step, all kept", len(ids))
		}
	})
}

// (c) A step succeeding while an application commits throughout: every row
// present, and the step either landed (exactly once, with its history row)
// or failed with the transient ErrLiveChanges having changed nothing.
func TestSucceedingStepWithConcurrentWriter(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		landed, transient := 0, 0
		for range trials(t, 2) {
			p := tempDB(t)
			files := map[string]string{"0001_app.sql": appTable,
				"0002_s.py": `import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO b VALUES (1)")
db.commit()
time.sleep(0.05)
db.execute("INSERT INTO b VALUES (2)")
db.commit()
`,
				"0003_t.sql": "-- migrate:up transaction:false\nINSERT INTO b VALUES (3);\n"}
			appBase(t, p, wal, files)
			w := startWriter(t, p, "app", 0)
			w.waitFirst(t)
			_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
			ids := w.finish(t)
			checkRows(t, p, "app", ids)
			var n, distinct int
			sqlOpen(t, p).QueryRow("SELECT count(*), count(DISTINCT i) FROM b").Scan(&n, &distinct)
			v := appliedVersion(t, p)
			switch {
			case err == nil:
				landed++
				if v != 3 || n != 3 || distinct != 3 {
					t.Fatalf("landed at %d with %d rows (%d distinct)", v, n, distinct)
				}
			case errors.Is(err, ErrLiveChanges):
				transient++
				if IsRefusal(err) {
					t.Fatal("ErrLiveChanges must be transient")
				}
				if (v == 1 && n != 0) || (v == 2 && n != 2) || v == 3 {
					t.Fatalf("transient failure at version %d with %d step rows", v, n)
				}
			default:
				t.Fatalf("want success or ErrLiveChanges, got %v", err)
			}
		}
		t.Logf("steps landed: %d, transient failures: %d", landed, transient)
	})
}

// The step is tried again on a fresh copy when another connection commits
// while it runs, and lands on the attempt during which nobody commits.
func TestStepRetriedWhenLiveChanged(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		p := tempDB(t)
		flag := filepath.Join(t.TempDir(), "once")
		files := map[string]string{"0001_app.sql": appTable, "0002_s.py": `import os, sqlite3, sys
flag = ` + strconv.Quote(flag) + `
if not os.path.exists(flag):
    open(flag, "w").close()
    live = sqlite3.connect(os.environ["SHOAL_TENANT_DB"], timeout=30)
    live.execute("INSERT INTO app (v) VALUES ('app')")
    live.commit()
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO b VALUES (1)")
db.commit()
`}
		appBase(t, p, wal, files)
		res, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
		if err != nil || len(res.Applied) != 1 {
			t.Fatalf("%+v %v", res, err)
		}
		var apps, bs int
		db := sqlOpen(t, p)
		db.QueryRow("SELECT count(*) FROM app").Scan(&apps)
		db.QueryRow("SELECT count(*) FROM b").Scan(&bs)
		if apps != 1 || bs != 1 {
			t.Fatalf("app rows %d (want the live commit kept), step rows %d (want 1)", apps, bs)
		}
	})
}

// A step during which the live DB changes every time gives up after
// stepAttempts with ErrLiveChanges, a transient error; nothing was changed
// and every live commit is kept.
func TestStepGivesUpWithErrLiveChanges(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		p := tempDB(t)
		files := map[string]string{"0001_app.sql": appTable, "0002_s.py": `import os, sqlite3, sys
live = sqlite3.connect(os.environ["SHOAL_TENANT_DB"], timeout=30)
live.execute("INSERT INTO app (v) VALUES ('app')")
live.commit()
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO b VALUES (1)")
db.commit()
`}
		appBase(t, p, wal, files)
		_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
		if !errors.Is(err, ErrLiveChanges) || IsRefusal(err) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("want the transient ErrLiveChanges, got %v", err)
		}
		var apps, bs int
		db := sqlOpen(t, p)
		db.QueryRow("SELECT count(*) FROM app").Scan(&apps)
		db.QueryRow("SELECT count(*) FROM b").Scan(&bs)
		if apps != stepAttempts || bs != 0 || appliedVersion(t, p) != 1 {
			t.Fatalf("app rows %d (want %d), step rows %d, version %d", apps, stepAttempts, bs, appliedVersion(t, p))
		}
		if _, err := os.Stat(p + stepCopySuffix); err == nil {
			t.Fatal("copy left behind")
		}
		if fi, _ := os.Stat(lockPath(p)); fi.Size() != 0 {
			t.Fatal("marker left behind")
		}
	})
}

// The copy-back's first backup step (no page copied) takes SQLite's write
// lock on the live DB: another connection cannot begin a write transaction
// until the backup finishes. In WAL mode readers still read (the watch uses
// PRAGMA data_version on a second connection); in rollback-journal mode the
// lock is EXCLUSIVE (no reader), which is why the watch compares the
// header's change counter there.
func TestCopyBackFirstStepTakesWriteLock(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		p := tempDB(t)
		appBase(t, p, wal, map[string]string{"0001_app.sql": appTable})
		cp := p + ".copy"
		execAll(t, p, "INSERT INTO app (v) VALUES ('x')")
		db, _ := openDB(p, time.Second, false)
		defer db.Close()
		conn, err := db.Conn(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := makeStepCopy(ctx(t), p, conn, cp, time.Second); err != nil {
			t.Fatal(err)
		}
		other, _ := openDB(p, 0, false)
		defer other.Close()
		otherConn, err := other.Conn(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer otherConn.Close()
		err = conn.Raw(func(dc any) error {
			bk, err := dc.(onlineBackuper).NewRestore(dsn(cp, time.Second, true))
			if err != nil {
				return err
			}
			defer bk.Finish()
			if _, err := bk.Step(0); err != nil {
				return err
			}
			if _, err := otherConn.ExecContext(ctx(t), "INSERT INTO app (v) VALUES ('y')"); err == nil || !isBusy(err) {
				return fmt.Errorf("another connection wrote while the copy-back's first step held the lock: %v", err)
			}
			var n int
			rerr := otherConn.QueryRowContext(ctx(t), "SELECT count(*) FROM app").Scan(&n)
			if wal && rerr != nil {
				return fmt.Errorf("WAL reader blocked: %v", rerr)
			}
			if !wal && (rerr == nil || !isBusy(rerr)) {
				return fmt.Errorf("rollback mode: want the reader locked out by EXCLUSIVE, got %v", rerr)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := otherConn.ExecContext(ctx(t), "INSERT INTO app (v) VALUES ('z')"); err != nil {
			t.Fatalf("after Finish: %v", err)
		}
	})
}

// The watch sees commits of other connections of this process and of other
// processes, in both journal modes, and nothing when nobody commits.
func TestLiveWatchSeesOtherCommits(t *testing.T) {
	journalModes(t, func(t *testing.T, wal bool) {
		p := tempDB(t)
		appBase(t, p, wal, map[string]string{"0001_app.sql": appTable})
		db, _ := openDB(p, time.Second, false)
		defer db.Close()
		conn, err := db.Conn(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		w, err := newLiveWatch(ctx(t), p, conn, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer w.close()
		if w.wal != wal {
			t.Fatalf("mode: wal=%v", w.wal)
		}
		expect := func(what string, want bool) {
			t.Helper()
			got, err := w.changed(ctx(t))
			if err != nil || got != want {
				t.Fatalf("%s: changed=%v (%v), want %v", what, got, err, want)
			}
		}
		mark := func() {
			t.Helper()
			if err := w.mark(ctx(t)); err != nil {
				t.Fatal(err)
			}
		}
		mark()
		expect("nobody committed", false)
		execAll(t, p, "INSERT INTO app (v) VALUES ('same process')")
		expect("another connection of this process committed", true)
		mark()
		expect("nobody committed since the new mark", false)
		wp := startWriter(t, p, "other process", 1)
		<-wp.done
		if err := wp.cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		expect("another process committed", true)
	})
}

// The step copy has the DB's own permission bits, and lives beside it.
func TestStepCopyHasDBPermissions(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_app.sql": appTable}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	files["0002_perm.sh"] = "stat -c '%a %n' \"$1\"\nexit 1\n"
	_, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{})
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("want the step's failure, got %v", err)
	}
	abs, _ := filepath.Abs(p)
	if got, want := strings.TrimSpace(me.Output), "600 "+abs+stepCopySuffix; got != want {
		t.Fatalf("step copy: %q, want %q", got, want)
	}
}

// A planted symlink where the step copy goes is removed, never followed.
func TestStepCopySymlinkNotFollowed(t *testing.T) {
	p := tempDB(t)
	files := map[string]string{"0001_app.sql": appTable, "0002_s.sql": "-- migrate:up transaction:false\nINSERT INTO b VALUES (1);\n"}
	appBase(t, p, false, files)
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("precious"), 0o644)
	if err := os.Symlink(target, p+stepCopySuffix); err != nil {
		t.Fatal(err)
	}
	if _, err := newEngine(t, files).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Fatalf("symlink target changed: %q", b)
	}
}
