package engine

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freshMigrations: six tables of 2000 rows, a Python script step at
// version 4, and a tiny page cache from the first statement on, so that the
// first transaction spills pages into a fresh file long before it commits:
// a kill then leaves a file whose first page is still zero beside a hot
// journal.
func freshMigrations() map[string]string {
	files := map[string]string{}
	for v := 1; v <= freshVersions; v++ {
		files[fmt.Sprintf("%04d_t%d.sql", v, v)] = fmt.Sprintf(`CREATE TABLE t%d (i INTEGER PRIMARY KEY, s TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
INSERT INTO t%d SELECT i, printf('%%08d-%%s', i, hex(randomblob(16))) FROM c;`, v, freshRows, v)
	}
	files["0001_t1.sql"] = "PRAGMA cache_size = 30;\n" + files["0001_t1.sql"]
	delete(files, "0004_t4.sql")
	files["0004_t4.py"] = fmt.Sprintf(`import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE t4 (i INTEGER PRIMARY KEY, s TEXT)")
for i in range(1, %d):
    db.execute("INSERT INTO t4 VALUES (?, ?)", (i, "x" * 40))
    if i %% 500 == 0:
        db.commit()
db.commit()
`, freshRows+1)
	return files
}

const freshVersions, freshRows = 6, 2000

// checkFreshBoundary asserts the DB is intact and exactly at one version
// boundary of freshMigrations (tables t1..tv, each full; history 1..v) and
// returns v.
func checkFreshBoundary(t *testing.T, p string) int {
	t.Helper()
	assertIntegrity(t, p)
	db := sqlOpen(t, p)
	defer db.Close()
	hist := history(t, p)
	for i, h := range hist {
		if h != int64(i+1) {
			t.Fatalf("history is not 1..%d, each once: %v", len(hist), hist)
		}
	}
	v := len(hist)
	for tb := 1; tb <= freshVersions; tb++ {
		var exists, rows int
		db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, fmt.Sprintf("t%d", tb)).Scan(&exists)
		if exists == 1 {
			db.QueryRow(fmt.Sprintf("SELECT count(*) FROM t%d", tb)).Scan(&rows)
		}
		if want := tb <= v; (exists == 1) != want || (want && rows != freshRows) {
			t.Fatalf("history at %d but table t%d exists=%d rows=%d: not a version boundary", v, tb, exists, rows)
		}
	}
	return v
}

// helperHot opens SHOAL_TEST_DB, begins a write transaction that spills
// pages to the file (a tiny page cache), says "ready" on stdout and waits
// to be killed: the file is left with a hot journal.
func helperHot() int {
	p := os.Getenv("SHOAL_TEST_DB")
	db, err := sql.Open("sqlite", dsn(p, time.Second, false))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, s := range []string{
		"PRAGMA cache_size = 10",
		"BEGIN IMMEDIATE",
		"CREATE TABLE spill (i INTEGER PRIMARY KEY, s TEXT)",
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) INSERT INTO spill SELECT i, hex(randomblob(32)) FROM c",
		"PRAGMA user_version = 12345",
	} {
		if _, err := db.Exec(s); err != nil {
			fmt.Fprintln(os.Stderr, s, err)
			return 1
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
	return 0
}

// leaveHotJournal runs helperHot on p and kills it with SIGKILL once its
// transaction has spilled.
func leaveHotJournal(t *testing.T, p string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHOAL_TEST_HELPER=hot", "SHOAL_TEST_DB="+p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("hot-journal helper: %q %s", line, stderr.String())
	}
	if fi, err := os.Stat(p + "-journal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no hot journal beside %s: %v", p, err)
	}
}

// A fresh tenant killed during its first run: a zeroed first page and a hot
// journal. status and the version probe explain it (not "corrupt"), and the
// next migrate rolls the journal back and takes the DB to head.
func TestFreshFileKilledMidTransactionIsNotCorrupt(t *testing.T) {
	p := tempDB(t)
	leaveHotJournal(t, p)
	if hdr := fileBytes(t, p); len(hdr) >= 16 && string(hdr[:16]) == sqliteMagic {
		t.Fatal("the killed transaction left a valid header: this test needs a zeroed first page")
	}
	e := newEngine(t, basic)
	_, err := e.Status(ctx(t), p)
	if !errors.Is(err, ErrHotJournal) || errors.Is(err, ErrCorrupt) ||
		!strings.Contains(err.Error(), "killed") || !strings.Contains(err.Error(), "Engine.Migrate") || strings.Contains(err.Error(), "shoal ") {
		t.Fatalf("status: want ErrHotJournal saying what to do, got %v", err)
	}
	if _, err := e.Version(ctx(t), p); !errors.Is(err, ErrHotJournal) {
		t.Fatalf("version: want ErrHotJournal, got %v", err)
	}
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{DryRun: true}); !errors.Is(err, ErrHotJournal) {
		t.Fatalf("dry run: want ErrHotJournal, got %v", err)
	}
	res, err := e.Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || res.From != 0 || res.To != 2 || len(res.Applied) != 2 {
		t.Fatalf("migrate after the kill: %+v %v", res, err)
	}
	assertIntegrity(t, p)
	if h := history(t, p); len(h) != 2 {
		t.Fatalf("history %v", h)
	}
	if _, err := os.Stat(p + "-journal"); !os.IsNotExist(err) {
		t.Fatal("the hot journal is still there")
	}
}

// The same on a DB that already had a version: status explains the hot
// journal instead of "attempt to write a readonly database (776)".
func TestStatusHotJournalOnExistingDB(t *testing.T) {
	p := tempDB(t)
	e := newEngine(t, basic)
	if _, err := e.Migrate(ctx(t), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	leaveHotJournal(t, p)
	_, err := e.Status(ctx(t), p)
	if !errors.Is(err, ErrHotJournal) || strings.Contains(err.Error(), "readonly") && !strings.Contains(err.Error(), "killed") {
		t.Fatalf("status: want ErrHotJournal, got %v", err)
	}
	t.Logf("%v", err)
	res, err := e.Migrate(ctx(t), p, MigrateOptions{})
	if err != nil || res.From != 1 || res.To != 2 {
		t.Fatalf("migrate after the kill: %+v %v", res, err)
	}
	assertIntegrity(t, p)
	var n int
	db := sqlOpen(t, p)
	if db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'spill'`).Scan(&n); n != 0 {
		t.Fatal("the killed transaction's table survived")
	}
}

func assertIntegrity(t *testing.T, p string) {
	t.Helper()
	db := sqlOpen(t, p)
	defer db.Close()
	var ic string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("integrity_check: %s %v", ic, err)
	}
}

// kill -9 spread over the whole of a first run on a fresh file (the first
// transaction spills into the file early): after each kill the engine never
// calls the file corrupt, and the next run takes it to head with every
// migration applied once. SHOAL_DRILL_SCALE multiplies the count (default 8).
func TestKillNineDuringFirstRun(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed for the script step of this drill")
	}
	n := trials(t, 8)
	p0 := tempDB(t)
	start := time.Now()
	if out, err := helperCmd("fresh", p0, false).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	full := time.Since(start)
	seen := map[string]int{}
	for trial := range n {
		p := tempDB(t)
		cmd := helperCmd("fresh", p, trial%3 == 2)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Stratified: trial i kills somewhere in the i-th slice of the run.
		delay := time.Duration((float64(trial) + rand.Float64()) / float64(n) * float64(full))
		time.Sleep(delay) // the kill moment is the point of this drill
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		state := "missing"
		if _, err := os.Stat(p); err == nil {
			state = "file"
			if hdr, _ := os.ReadFile(p); len(hdr) >= 16 && string(hdr[:16]) != sqliteMagic {
				state = "no header"
			}
			if fi, err := os.Stat(p + "-journal"); err == nil && fi.Size() > 0 {
				state += "+journal"
			}
		}
		seen[state]++
		e := newEngine(t, freshMigrations())
		// The engine looks first: nothing may have rolled the journal back.
		if _, err := e.Version(ctx(t), p); errors.Is(err, ErrCorrupt) {
			t.Fatalf("trial %d (killed after %s, %s): version probe calls it corrupt: %v", trial, delay, state, err)
		}
		if _, err := e.Status(ctx(t), p); errors.Is(err, ErrCorrupt) {
			t.Fatalf("trial %d (killed after %s, %s): status calls it corrupt: %v", trial, delay, state, err)
		}
		if _, err := e.Migrate(context.Background(), p, MigrateOptions{}); err != nil {
			t.Fatalf("trial %d (killed after %s, %s): next run failed: %v", trial, delay, state, err)
		}
		if got := checkFreshBoundary(t, p); got != freshVersions {
			t.Fatalf("trial %d: next run ended at %d", trial, got)
		}
	}
	t.Logf("%d kills over a %s first run; states after the kill: %v", n, full, seen)
}
