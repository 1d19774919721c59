package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/drill"
)

// TestMain lets tests re-run this binary as a separate migrator process.
func TestMain(m *testing.M) {
	switch os.Getenv("SHOAL_TEST_HELPER") {
	case "migrate":
		if f := os.Getenv("SHOAL_TEST_PAUSE_STEP"); f != "" {
			// Stop after the first statement of a transaction:false step.
			stepStatementHook = func(n int) {
				if n == 1 {
					os.WriteFile(f, nil, 0o644)
					select {}
				}
			}
		}
		if f := os.Getenv("SHOAL_TEST_PAUSE_COPYBACK"); f != "" {
			// Stop in the middle of the copy-back, pages written, for a kill.
			copyBackHook = func(chunk int) {
				if chunk == 2 {
					os.WriteFile(f, nil, 0o644)
					select {}
				}
			}
		}
		os.Exit(helperMigrate())
	case "writer":
		os.Exit(helperWriter())
	case "backup":
		// Back up SHOAL_TEST_DB into SHOAL_TEST_BAKDIR and stop with the
		// temporary file written, for a kill.
		placeBackupHook = func(tmp string) {
			os.WriteFile(os.Getenv("SHOAL_TEST_PAUSED"), []byte(tmp), 0o644)
			select {}
		}
		if _, err := Backup(context.Background(), os.Getenv("SHOAL_TEST_DB"), BackupOptions{Dir: os.Getenv("SHOAL_TEST_BAKDIR")}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "hot":
		os.Exit(helperHot())
	}
	os.Exit(m.Run())
}

// helperMigrate migrates SHOAL_TEST_DB with the migration set named by
// SHOAL_TEST_SET.
func helperMigrate() int {
	var files map[string]string
	switch os.Getenv("SHOAL_TEST_SET") {
	case "race":
		files = raceMigrations(8)
	case "race3":
		files = raceMigrations(3)
	case "long":
		files = longMigrations()
	case "slowstep":
		files = slowStepMigrations()
	case "fresh":
		files = freshMigrations()
	}
	e, err := New(Options{Dir: dir(files), DirName: "test", BusyTimeout: 60 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	_, err = e.Migrate(context.Background(), os.Getenv("SHOAL_TEST_DB"), MigrateOptions{PerMigration: os.Getenv("SHOAL_TEST_PER") == "1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperCmd runs a migration of db in a child process (which the drills
// kill). The child's temporary directory is the test's own (the parent of
// the DB's t.TempDir()), removed with the test: a child killed during a
// script step cannot remove its shoal-step-* directory itself.
func helperCmd(set, db string, per bool) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHOAL_TEST_HELPER=migrate", "SHOAL_TEST_SET="+set, "SHOAL_TEST_DB="+db,
		"TMPDIR="+filepath.Dir(filepath.Dir(db)))
	if per {
		cmd.Env = append(cmd.Env, "SHOAL_TEST_PER=1")
	}
	return cmd
}

// Sixteen processes racing on one fresh file: each migration exactly once,
// every process exits 0.
func TestProcessesRaceOnOneFile(t *testing.T) {
	for round := range trials(t, 1) {
		t.Run(fmt.Sprint("round-", round+1), testProcessesRaceOnOneFile)
	}
}

func testProcessesRaceOnOneFile(t *testing.T) {
	p := tempDB(t)
	var wg sync.WaitGroup
	outs := make([][]byte, 16)
	errs := make([]error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = helperCmd("race", p, i%2 == 0).CombinedOutput()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	checkRaceRows(t, p, 8)
}

// longMigrations: a table per version filled with rows, and a Python script
// step in the middle, so that a kill lands inside statements, between
// migrations and inside a step protected by a snapshot.
func longMigrations() map[string]string {
	files := map[string]string{}
	for v := 1; v <= 12; v++ {
		name := fmt.Sprintf("%04d_t%d.sql", v, v)
		files[name] = fmt.Sprintf(`CREATE TABLE t%d (i INTEGER PRIMARY KEY, s TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000)
INSERT INTO t%d SELECT i, printf('%%08d-%%s', i, hex(randomblob(16))) FROM c;`, v, v)
	}
	files["0007_t7.py"] = `import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE t7 (i INTEGER PRIMARY KEY, s TEXT)")
for i in range(1, 5001):
    db.execute("INSERT INTO t7 VALUES (?, ?)", (i, "x" * 40))
    if i % 500 == 0:
        db.commit()
db.commit()
`
	delete(files, "0007_t7.sql")
	return files
}

func trials(t *testing.T, def int) int { return drill.Trials(t, def) }

// kill -9 of a migrator at random moments of a long run: the DB passes
// integrity_check, its schema is exactly one version boundary matching its
// history, and the next run reaches head. SHOAL_DRILL_SCALE multiplies the count
// (6 in CI; SHOAL_DRILL_SCALE=10 nightly).
func TestKillNineMidMigration(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed for the script step of this drill")
	}
	n := trials(t, 6)
	// Measure one uninterrupted run to spread the kill moments over it.
	p0 := tempDB(t)
	start := time.Now()
	if out, err := helperCmd("long", p0, false).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	full := time.Since(start)
	boundaries := map[int]bool{}
	for trial := range n {
		p := tempDB(t)
		per := trial%2 == 1
		cmd := helperCmd("long", p, per)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rand.Int64N(int64(full)))
		time.Sleep(delay) // the random kill moment is the point of this test
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// A kill inside the script step leaves it half-done with its marker
		// set; the next run on the DB undoes it before anything else, even a
		// run with nothing to apply.
		if vh := appliedVersion(t, p); vh > 0 {
			if _, err := newEngine(t, longMigrations()).Migrate(ctx(t), p, MigrateOptions{To: vh}); err != nil {
				t.Fatalf("trial %d: recovery run: %v", trial, err)
			}
		}
		v := checkBoundary(t, p)
		boundaries[v] = true
		if _, err := newEngine(t, longMigrations()).Migrate(ctx(t), p, MigrateOptions{}); err != nil {
			t.Fatalf("trial %d (killed after %s at version %d): next run failed: %v", trial, delay, v, err)
		}
		if got := checkBoundary(t, p); got != 12 {
			t.Fatalf("trial %d: next run ended at %d", trial, got)
		}
		for _, side := range []string{snapshotSuffix, "-journal"} {
			if _, err := os.Stat(p + side); err == nil {
				t.Fatalf("trial %d: %s left behind after recovery", trial, side)
			}
		}
	}
	t.Logf("%d trials over a %s run; versions seen at the kill: %v", n, full, boundaries)
}

// checkBoundary asserts the DB is intact and exactly at one version boundary
// (tables t1..tv, each full; history 1..v) and returns v.
func checkBoundary(t *testing.T, p string) int {
	t.Helper()
	if _, err := os.Stat(p); os.IsNotExist(err) {
		return 0
	}
	db := sqlOpen(t, p)
	defer db.Close()
	var ic string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ic); err != nil || ic != "ok" {
		t.Fatalf("integrity_check: %s %v", ic, err)
	}
	var hist []int64
	var hasHist int
	db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = '` + historyTable + `'`).Scan(&hasHist)
	if hasHist == 1 {
		hist = history(t, p)
	}
	v := len(hist)
	for i, h := range hist {
		if h != int64(i+1) {
			t.Fatalf("history has gaps: %v", hist)
		}
	}
	for tb := 1; tb <= 12; tb++ {
		var exists, rows int
		db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, fmt.Sprintf("t%d", tb)).Scan(&exists)
		if exists == 1 {
			db.QueryRow(fmt.Sprintf("SELECT count(*) FROM t%d", tb)).Scan(&rows)
		}
		want := tb <= v
		if (exists == 1) != want || (want && rows != 5000) {
			t.Fatalf("history at %d but table t%d exists=%d rows=%d: not a version boundary", v, tb, exists, rows)
		}
	}
	return v
}

// appliedVersion is the newest version in the DB's history (0: none yet).
func appliedVersion(t *testing.T, p string) int64 {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		return 0
	}
	db := sqlOpen(t, p)
	defer db.Close()
	var v int64
	if db.QueryRow(`SELECT coalesce(max(version), 0) FROM `+historyTable).Scan(&v) != nil {
		return 0
	}
	return v
}
