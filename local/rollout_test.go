package local

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
)

// poisonFleet: n tenants at version 3 (fleettest's head), and an engine
// whose migration 4 is a syntax error: it fails on every tenant.
func poisonFleet(t *testing.T, n int) (*engine.Engine, string, []string) {
	t.Helper()
	root := t.TempDir()
	tenants := fleettest.Fleet(t, fleettest.Engine(t), root, n, func(int) int64 { return fleettest.Head })
	dir := fstest.MapFS{}
	for k, v := range fleettest.Migrations() {
		dir[k] = v
	}
	dir["0004_poison.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE users ADD COLUMN email TEXT;\nSELEC broken;\n")}
	e, err := engine.New(engine.Options{Dir: dir, DirName: "poison", BusyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e, root, tenants
}

func hashes(t *testing.T, root string, tenants []string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, tn := range tenants {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(tn)))
		if err != nil {
			t.Fatal(err)
		}
		out[tn] = sha256.Sum256(data)
	}
	return out
}

// touched lists the tenants a worker opened to migrate: each has a backup
// (taken just before migrating).
func touched(t *testing.T, root string, tenants []string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, tn := range tenants {
		if baks, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(tn)) + ".*.bak"); len(baks) > 0 {
			out[tn] = true
			if len(baks) > 1 {
				t.Errorf("%s: %d backups in one run", tn, len(baks))
			}
		}
	}
	return out
}

// A poison migration over 50 tenants with --max-failures 3: at most 3 +
// the workers' concurrency tenants are touched, every other one is
// reported skipped and left byte-identical, the report is not OK; a later
// run with the migration fixed migrates everything.
func TestMaxFailuresHalts(t *testing.T) {
	t.Parallel()
	e, root, tenants := poisonFleet(t, 50)
	before := hashes(t, root, tenants)
	const workers, maxFailures = 4, 3
	var halted string
	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: workers,
		Backoff: 10 * time.Millisecond, MaxFailures: maxFailures, OnHalt: func(r string) { halted = r }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Summary.Total != 50 || rep.Summary.Pending != 0 || len(rep.Databases) != 50 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	failed, skipped := rep.Summary.Counts["failed"], rep.Summary.Counts[fleet.OutcomeSkipped]
	if failed < maxFailures || failed > maxFailures+workers || failed+skipped != 50 {
		t.Fatalf("failed %d, skipped %d: want %d..%d failed, the rest skipped", failed, skipped, maxFailures, maxFailures+workers)
	}
	if !strings.Contains(halted, "--max-failures 3") {
		t.Fatalf("halt reason %q", halted)
	}
	touch := touched(t, root, tenants)
	if len(touch) > maxFailures+workers {
		t.Fatalf("%d tenants touched, at most %d", len(touch), maxFailures+workers)
	}
	after := hashes(t, root, tenants)
	for _, r := range rep.Databases {
		switch r.Outcome {
		case "failed":
			if r.Attempt != 1 || r.Retryable || r.Error == nil || !strings.Contains(*r.Error, "0004_poison.sql") {
				t.Fatalf("failed result %+v", r)
			}
		case fleet.OutcomeSkipped:
			if touch[r.Tenant] || after[r.Tenant] != before[r.Tenant] {
				t.Fatalf("skipped tenant %s was touched", r.Tenant)
			}
			if r.Error == nil || !strings.Contains(*r.Error, "halted") {
				t.Fatalf("skipped result %+v", r)
			}
		default:
			t.Fatalf("result %+v", r)
		}
	}
	// Fixed: a later run picks up everything behind.
	rep, err = Run(context.Background(), Options{Engine: fleettest.Engine(t), Root: root, Pattern: "*/app.db", Workers: workers,
		MaxFailures: maxFailures})
	if err != nil || !rep.OK() {
		t.Fatalf("second run: %v %+v", err, rep.Summary)
	}
}

// A canary of 5 with a poison migration: only the 5 canaries are touched,
// the run halts, the rest is skipped byte-identical.
func TestCanaryStopsRun(t *testing.T) {
	t.Parallel()
	e, root, tenants := poisonFleet(t, 30)
	before := hashes(t, root, tenants)
	var halted string
	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 4,
		Canary: 5, OnHalt: func(r string) { halted = r }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Summary.Counts["failed"] != 5 || rep.Summary.Counts[fleet.OutcomeSkipped] != 25 || rep.Summary.Total != 30 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	if !strings.HasPrefix(halted, "canary ") {
		t.Fatalf("halt reason %q", halted)
	}
	touch := touched(t, root, tenants)
	after := hashes(t, root, tenants)
	var canaries []string
	for _, r := range rep.Databases {
		if r.Outcome == "failed" {
			canaries = append(canaries, r.Tenant)
			continue
		}
		if touch[r.Tenant] || after[r.Tenant] != before[r.Tenant] {
			t.Fatalf("%s (not a canary) was touched", r.Tenant)
		}
	}
	if len(touch) != 5 {
		t.Fatalf("%d touched: %v (canaries %v)", len(touch), touch, canaries)
	}
}

// A canary that passes lets the rest through; named canaries are taken
// from the list.
func TestCanaryPassesThenRest(t *testing.T) {
	t.Parallel()
	e := fleettest.Engine(t)
	root := t.TempDir()
	tenants := fleettest.Fleet(t, e, root, 12, func(i int) int64 { return int64(i % 3) })
	sort.Strings(tenants)
	var halted string
	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 2, NoBackup: true,
		CanaryTenants: []string{tenants[7], tenants[9]}, MaxFailures: 1, OnHalt: func(r string) { halted = r }})
	if err != nil || !rep.OK() || rep.Summary.Total != 12 || rep.Summary.Counts["migrated"] != 12 || halted != "" {
		t.Fatalf("%v %+v %q", err, rep.Summary, halted)
	}
}
