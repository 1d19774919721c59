package local

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/fleet/fleettest"
)

// TestRunReportAtHeadAndVerify: `shoal run` reports DBs at head current
// from the producer, without a job; --verify still sends every DB through
// a worker, so a DB at head whose schema drifted is found.
func TestRunReportAtHeadAndVerify(t *testing.T) {
	t.Parallel()
	e := fleettest.Engine(t)
	root := t.TempDir()
	tenants := fleettest.Fleet(t, e, root, 4, func(i int) int64 { return e.Head() })
	fleettest.Exec(t, filepath.Join(root, tenants[1]), "CREATE INDEX hand_made ON users(name)")
	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 1, NoBackup: true, ReportAtHead: true})
	if err != nil || rep.Summary.Counts["current"] != 4 || rep.Summary.Total != 4 {
		t.Fatalf("%+v %v", rep.Summary, err)
	}
	for _, r := range rep.Databases {
		if r.Worker != "producer:shoal-run" || r.Attempt != 0 || r.JobID == "" {
			t.Fatalf("result %+v: want the producer's", r)
		}
	}
	rep, err = Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 1, NoBackup: true, ReportAtHead: true, Verify: true})
	if err != nil || rep.Summary.Counts["drifted"] != 1 || rep.Summary.Counts["current"] != 3 {
		t.Fatalf("--verify: %+v %v", rep.Summary, err)
	}
}
