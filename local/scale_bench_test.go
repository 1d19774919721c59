package local

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// twenty is 20 small migrations: a table and an index each.
func twenty() (fstest.MapFS, []string) {
	fsys := fstest.MapFS{}
	var stmts []string
	for v := 1; v <= 20; v++ {
		t := fmt.Sprintf("CREATE TABLE t%d (id INTEGER PRIMARY KEY, a TEXT, b INTEGER);", v)
		i := fmt.Sprintf("CREATE INDEX t%d_a ON t%d(a);", v, v)
		fsys[fmt.Sprintf("%04d_m%d.sql", v, v)] = &fstest.MapFile{Data: []byte(t + "\n" + i + "\n")}
		stmts = append(stmts, t, i)
	}
	return fsys, stmts
}

// BenchmarkRunVsFloors: SHOAL_BENCH_DBS fresh tenants (default 200) x 20
// migrations through `shoal run`'s code with 1 and 2 workers, against two
// floors in the same iteration on other fresh files: the engine alone in a
// loop (the queue's overhead) and a bare database/sql single-transaction
// loop. Backups off.
func BenchmarkRunVsFloors(b *testing.B) {
	n := 200
	if s := os.Getenv("SHOAL_BENCH_DBS"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			n = v
		}
	}
	fsys, stmts := twenty()
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("tenants=%d/workers=%d", n, workers), func(b *testing.B) {
			var runT, engT, bareT time.Duration
			for range b.N {
				runRoot, engRoot, bareRoot := freshFleet(b, n), freshFleet(b, n), b.TempDir()
				syscall.Sync()
				e, err := engine.New(engine.Options{Dir: fsys, DirName: "twenty"})
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				rep, err := Run(context.Background(), Options{Engine: e, Root: runRoot, Workers: workers, NoBackup: true})
				runT += time.Since(t0)
				if err != nil || !rep.OK() || rep.Summary.Counts["migrated"] != n {
					b.Fatalf("run: %v %+v", err, rep.Summary)
				}
				syscall.Sync()
				e2, _ := engine.New(engine.Options{Dir: fsys, DirName: "twenty"})
				t0 = time.Now()
				for i := range n {
					p := filepath.Join(engRoot, fmt.Sprintf("t-%05d", i), "app.db")
					if _, err := e2.Migrate(context.Background(), p, engine.MigrateOptions{MustExist: true}); err != nil {
						b.Fatal(err)
					}
				}
				engT += time.Since(t0)
				syscall.Sync()
				t0 = time.Now()
				for i := range n {
					bareLoop(b, filepath.Join(bareRoot, fmt.Sprintf("b%05d.db", i)), stmts)
				}
				bareT += time.Since(t0)
			}
			per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(n*b.N) }
			b.ReportMetric(per(runT), "run-ms/tenant")
			b.ReportMetric(per(engT), "engine-ms/tenant")
			b.ReportMetric(per(bareT), "bare-ms/tenant")
			b.ReportMetric(float64(runT)/float64(engT), "x-engine")
			b.ReportMetric(float64(runT)/float64(bareT), "x-bare")
		})
	}
}

// bareLoop is the floor: open, one BEGIN IMMEDIATE, the statements and a
// version row, COMMIT, close.
func bareLoop(b *testing.B, p string, stmts []string) {
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(30000)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range append(stmts, "CREATE TABLE v (version INTEGER)", "INSERT INTO v VALUES (20)") {
		if _, err := tx.Exec(s); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
