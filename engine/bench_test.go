package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// Benchmarks report the engine's cost as a ratio to a floor measured in the
// same run, on the same files: os.Stat, a bare database/sql open +
// PRAGMA user_version + close, a bare single-transaction loop.

func twentyMigrations() map[string]string {
	files := map[string]string{}
	for v := 1; v <= 20; v++ {
		files[fmt.Sprintf("%04d_m%d.sql", v, v)] = fmt.Sprintf(
			"CREATE TABLE t%d (id INTEGER PRIMARY KEY, a TEXT, b INTEGER);\nCREATE INDEX t%d_a ON t%d(a);", v, v, v)
	}
	return files
}

// medianOf runs f n times and returns the median duration.
func medianOf(n int, f func()) time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		s := time.Now()
		f()
		ds[i] = time.Since(s)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[n/2]
}

// Already-current DB through one engine handle vs os.Stat of the same file.
func BenchmarkCurrentCached(b *testing.B) {
	e := newEngine(b, twentyMigrations())
	p := tempDB(b)
	c := context.Background()
	if _, err := e.Migrate(c, p, MigrateOptions{}); err != nil {
		b.Fatal(err)
	}
	n := max(b.N, 1000)
	b.ResetTimer()
	eng := medianOf(n, func() {
		if _, err := e.Migrate(c, p, MigrateOptions{}); err != nil {
			b.Fatal(err)
		}
	})
	stat := medianOf(n, func() { os.Stat(p) })
	b.ReportMetric(float64(eng.Nanoseconds()), "engine-ns")
	b.ReportMetric(float64(stat.Nanoseconds()), "stat-ns")
	b.ReportMetric(float64(eng)/float64(stat), "x-stat")
}

// First check of a current DB in a fresh handle vs a bare open +
// PRAGMA user_version + close: rollback-journal mode (the header is read
// from the file) and WAL mode (SQLite is asked).
func BenchmarkCurrentFirstCheck(b *testing.B) {
	b.Run("journal=delete", func(b *testing.B) { benchFirstCheck(b, false) })
	b.Run("journal=wal", func(b *testing.B) { benchFirstCheck(b, true) })
}

func benchFirstCheck(b *testing.B, wal bool) {
	e := newEngine(b, twentyMigrations())
	p := tempDB(b)
	c := context.Background()
	if wal {
		execAll(b, p, "PRAGMA journal_mode = WAL")
	}
	if _, err := e.Migrate(c, p, MigrateOptions{}); err != nil {
		b.Fatal(err)
	}
	n := max(b.N, 300)
	b.ResetTimer()
	eng := medianOf(n, func() {
		e.forget(p)
		if _, err := e.Migrate(c, p, MigrateOptions{}); err != nil {
			b.Fatal(err)
		}
	})
	bare := medianOf(n, func() {
		db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(30000)")
		if err != nil {
			b.Fatal(err)
		}
		var v int
		if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
			b.Fatal(err)
		}
		db.Close()
	})
	b.ReportMetric(float64(eng.Nanoseconds()), "engine-ns")
	b.ReportMetric(float64(bare.Nanoseconds()), "bare-ns")
	b.ReportMetric(float64(eng)/float64(bare), "x-bare")
}

// Fresh DBs x 20 small migrations, one goroutine: the engine vs a bare
// loop that runs the same statements in one transaction per DB.
func BenchmarkFreshDBs(b *testing.B) {
	files := twentyMigrations()
	e := newEngine(b, files)
	var stmts []string
	for _, m := range e.migrations {
		for _, s := range m.Up {
			stmts = append(stmts, s.SQL)
		}
	}
	dbs := 200
	if s := os.Getenv("SHOAL_BENCH_DBS"); s != "" {
		fmt.Sscan(s, &dbs)
	}
	c := context.Background()
	var engT, bareT time.Duration
	for i := 0; i < max(b.N, 1); i++ {
		d := b.TempDir()
		// Alternate the order so neither side always runs on a warmer cache.
		runEngine := func() {
			s := time.Now()
			for j := range dbs {
				if _, err := e.Migrate(c, filepath.Join(d, fmt.Sprintf("e%d.db", j)), MigrateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			engT += time.Since(s)
		}
		runBare := func() {
			s := time.Now()
			for j := range dbs {
				bareMigrate(b, filepath.Join(d, fmt.Sprintf("b%d.db", j)), stmts)
			}
			bareT += time.Since(s)
		}
		if i%2 == 0 {
			runEngine()
			runBare()
		} else {
			runBare()
			runEngine()
		}
	}
	b.ReportMetric(float64(engT.Microseconds())/float64(dbs*max(b.N, 1)), "engine-us/db")
	b.ReportMetric(float64(bareT.Microseconds())/float64(dbs*max(b.N, 1)), "bare-us/db")
	b.ReportMetric(float64(engT)/float64(bareT), "x-bare")
}

// bareMigrate is the floor: open, one BEGIN IMMEDIATE, the statements, a
// version row, COMMIT, close.
func bareMigrate(b *testing.B, p string, stmts []string) {
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(30000)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(s); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := tx.Exec("CREATE TABLE v (version INTEGER)"); err != nil {
		b.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO v VALUES (20)"); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// The snapshot around a script or transaction:false step, and its restore
// when the step fails, on a DB of SHOAL_BENCH_MB megabytes (default 20),
// against io.Copy + fsync of the same file in the same run.
func BenchmarkSnapshotRestore(b *testing.B) {
	p, size := sfBenchDB(b)
	mb := float64(size) / (1 << 20)
	c := context.Background()
	db, err := openDB(p, 30*time.Second, false)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(c)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	snap := p + snapshotSuffix
	var snapT, restT, copyT time.Duration
	for i := 0; i < b.N; i++ {
		s := time.Now()
		if err := takeSnapshot(c, conn, snap, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		snapT += time.Since(s)
		s = time.Now()
		if err := copyPages(c, conn, snap, 30*time.Second, true); err != nil {
			b.Fatal(err)
		}
		restT += time.Since(s)
		removeSnapshot(snap)
		dst := filepath.Join(b.TempDir(), "copy.db")
		s = time.Now()
		if err := sfCopySync(p, dst); err != nil {
			b.Fatal(err)
		}
		copyT += time.Since(s)
		os.Remove(dst)
	}
	n := float64(b.N)
	b.ReportMetric(mb, "MB")
	b.ReportMetric(snapT.Seconds()*1000/n, "snapshot-ms")
	b.ReportMetric(restT.Seconds()*1000/n, "restore-ms")
	b.ReportMetric(snapT.Seconds()*1000/n/mb, "snapshot-ms/MB")
	b.ReportMetric(restT.Seconds()*1000/n/mb, "restore-ms/MB")
	b.ReportMetric(float64(snapT)/float64(copyT), "snapshot-x-copy")
}
