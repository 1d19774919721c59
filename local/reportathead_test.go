package local

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/embedded"
	"github.com/shoal-dev/shoal/fleet/fleettest"
	"github.com/shoal-dev/shoal/schema"
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
	rep, err = Run(context.Background(), Options{Engine: schema.Verifier{Engine: e}, Root: root, Pattern: "*/app.db", Workers: 1, NoBackup: true, ReportAtHead: true, Verify: true})
	if err != nil || rep.Summary.Counts["drifted"] != 1 || rep.Summary.Counts["current"] != 3 {
		t.Fatalf("--verify: %+v %v", rep.Summary, err)
	}
}

// TestRunAtHeadPublishesNothing: in `shoal run` the DBs found at head go
// straight into the report: the embedded results stream receives no
// message for them (a re-check of a fleet at head costs the walk, not the
// queue), and the report still lists every tenant as current.
func TestRunAtHeadPublishesNothing(t *testing.T) {
	t.Parallel()
	e := fleettest.Engine(t)
	root := t.TempDir()
	fleettest.Fleet(t, e, root, 30, func(i int) int64 {
		if i < 3 {
			return 1 // behind: these three go through a worker
		}
		return e.Head()
	})
	srv, err := embedded.Start(embedded.Options{DontListen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	rep, err := Run(context.Background(), Options{Engine: e, Root: root, Pattern: "*/app.db", Workers: 1, NoBackup: true,
		ReportAtHead: true, RunID: "quiet", Server: srv})
	if err != nil || rep.Summary.Counts["current"] != 27 || rep.Summary.Counts["migrated"] != 3 || rep.Summary.Total != 30 || rep.Len() != 30 {
		t.Fatalf("%+v %v", rep.Summary, err)
	}
	nc, err := srv.Conn()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), fleet.DefaultResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(fleet.Names{}.ResultSubject("quiet")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[fleet.Names{}.ResultSubject("quiet")]; n != 3 {
		t.Fatalf("%d results published for the run, want the 3 workers' only", n)
	}
}
