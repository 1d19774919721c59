package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
	"github.com/shoal-dev/shoal/migrations"
	"github.com/shoal-dev/shoal/schema"
	"github.com/shoal-dev/shoal/tenants"
)

func TestRunLocal(t *testing.T) {
	t.Parallel()
	e := fleettest.Engine(t)
	root := t.TempDir()
	fleettest.Fleet(t, e, root, 20, func(i int) int64 { return int64(i % 4) })
	fleettest.Unmanaged(t, filepath.Join(root, "zz-legacy", "app.db"))
	progress := 0
	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 3, NoBackup: true,
		Progress: func(*fleet.Tracker) { progress++ }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Total != 21 || rep.Summary.Counts["migrated"] != 15 || rep.Summary.Counts["current"] != 5 || rep.Summary.Counts["unmanaged"] != 1 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	if rep.OK() || len(rep.Failed()) != 1 || rep.Failed()[0].Tenant != "zz-legacy/app.db" {
		t.Fatalf("failed %+v", rep.Failed())
	}
	if progress == 0 {
		t.Fatal("no progress callback")
	}
	// empty fleet: done at once, OK
	rep, err = Run(context.Background(), Options{Engine: e, Root: t.TempDir(), Workers: 1})
	if err != nil || !rep.OK() || rep.Summary.Total != 0 {
		t.Fatalf("empty fleet: %+v %v", rep, err)
	}
}

func freshFleet(b *testing.B, n int) string {
	root := b.TempDir()
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("t-%05d", i))
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "app.db"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

func exampleEngine(b *testing.B) *engine.Engine {
	e, err := engine.New(engine.Options{Dir: migrations.FS, DirName: "example"})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkRun measures `shoal run` (embedded NATS, producer, N workers)
// over fresh tenants against a floor measured in the same iteration: the
// engine alone migrating as many fresh files in a plain loop. Reported:
// run tenants/s, floor tenants/s and their ratio.
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 3x ./local/
func BenchmarkRun(b *testing.B) {
	n := 500
	if testing.Short() {
		n = 100
	}
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("tenants=%d/workers=%d", n, workers), func(b *testing.B) {
			var runTime, floorTime time.Duration
			b.StopTimer()
			for i := range b.N {
				floorRoot, runRoot := freshFleet(b, n), freshFleet(b, n)
				syscall.Sync() // no writeback of the new files during the measurements
				floor := func() {
					fe := exampleEngine(b)
					t0 := time.Now()
					for i := range n {
						p := filepath.Join(floorRoot, fmt.Sprintf("t-%05d", i), "app.db")
						if _, err := fe.Migrate(context.Background(), p, engine.MigrateOptions{MustExist: true}); err != nil {
							b.Fatal(err)
						}
					}
					floorTime += time.Since(t0)
				}
				run := func() {
					re := exampleEngine(b)
					b.StartTimer()
					t0 := time.Now()
					rep, err := Run(context.Background(), Options{Engine: re, Root: runRoot, Workers: workers, NoBackup: true})
					runTime += time.Since(t0)
					b.StopTimer()
					if err != nil || !rep.OK() || rep.Summary.Counts["migrated"] != n {
						b.Fatalf("run: %v %+v", err, rep.Summary)
					}
				}
				// Alternate the order so neither side always runs first.
				if i%2 == 0 {
					floor()
					syscall.Sync()
					run()
				} else {
					run()
					syscall.Sync()
					floor()
				}
			}
			runRate := float64(n*b.N) / runTime.Seconds()
			floorRate := float64(n*b.N) / floorTime.Seconds()
			b.ReportMetric(runRate, "tenants/s")
			b.ReportMetric(floorRate, "floor-tenants/s")
			b.ReportMetric(runRate/floorRate, "ratio-to-floor")
		})
	}
}

// --verify: a DB at head whose schema was changed by hand is reported
// drifted (not at head), by the workers and by fleet status.
func TestRunVerifyReportsDrift(t *testing.T) {
	t.Parallel()
	e := fleettest.Engine(t)
	root := t.TempDir()
	dbs := fleettest.Fleet(t, e, root, 4, func(i int) int64 { return e.Head() })
	p := filepath.Join(root, dbs[2])
	fleettest.Exec(t, p, "CREATE INDEX hand_made ON users(name)")
	rep, err := Run(context.Background(), Options{Engine: schema.Verifier{Engine: e}, Root: root, Pattern: "*/app.db", Workers: 2, NoBackup: true, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Summary.Counts["drifted"] != 1 || rep.Summary.Counts["current"] != 3 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	f := rep.Failed()
	if len(f) != 1 || f[0].Path != p || f[0].Error == nil || !strings.Contains(*f[0].Error, "extra index hand_made") {
		t.Fatalf("failed %+v", f)
	}
	st, err := tenants.Status(context.Background(), schema.Verifier{Engine: e}, root, "*/app.db", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Drifted) != 1 || st.AtHead() {
		t.Fatalf("fleet status --verify: %+v", st)
	}
	st, err = tenants.Status(context.Background(), e, root, "*/app.db", 2, false)
	if err != nil || len(st.Drifted) != 0 || !st.AtHead() {
		t.Fatalf("without --verify drift is not read: %+v %v", st, err)
	}
}

// `shoal run` stays inside the root: a tenant directory and a tenant file
// planted as symlinks to outside DBs are neither published nor migrated.
func TestRunLocalStaysInsideRoot(t *testing.T) {
	t.Parallel()
	e := fleettest.Engine(t)
	root, outside := t.TempDir(), t.TempDir()
	fleettest.Fleet(t, e, root, 3, nil)
	os.MkdirAll(filepath.Join(outside, "x"), 0o755)
	if _, err := e.Migrate(context.Background(), filepath.Join(outside, "x", "app.db"), engine.MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x"), filepath.Join(root, "evildir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x", "app.db"), filepath.Join(root, "t-000", "evil.db")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(outside, "x", "app.db"))
	entsBefore, _ := os.ReadDir(filepath.Join(outside, "x"))
	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/*.db", Workers: 2, NoBackup: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Total != 3 || rep.Summary.Counts["migrated"] != 3 {
		t.Fatalf("summary %+v: only the 3 real tenants", rep.Summary)
	}
	after, _ := os.ReadFile(filepath.Join(outside, "x", "app.db"))
	ents, _ := os.ReadDir(filepath.Join(outside, "x"))
	if string(before) != string(after) || len(ents) != len(entsBefore) {
		t.Fatalf("the outside DB changed or got side files: %d entries", len(ents))
	}
}
