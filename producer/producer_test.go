package producer

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
)

func TestProduceDedupManifestAndJobs(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	ctx := context.Background()
	if err := fleet.ProvisionStreams(ctx, js, fleet.Settings{}); err != nil {
		t.Fatal(err)
	}
	e := fleettest.Engine(t)
	root := t.TempDir()
	fleettest.Fleet(t, e, root, 30, nil)
	o := Options{Root: root, RunID: "r1", Pattern: "*/app.db", Engine: e, Window: 4}
	st, err := Produce(ctx, js, o)
	if err != nil || st.Jobs != 30 || st.Published != 30 {
		t.Fatalf("%+v %v", st, err)
	}
	st, err = Produce(ctx, js, o)
	if err != nil || st.Jobs != 30 || st.Published != 0 || st.Duplicates != 30 {
		t.Fatalf("again: %+v %v", st, err)
	}
	if n := fleettest.JobsLeft(t, js); n != 30 {
		t.Fatalf("%d jobs", n)
	}
	// the manifest says the total
	stream, _ := js.Stream(ctx, fleet.DefaultResultsStream)
	raw, err := stream.GetLastMsgForSubject(ctx, "shoal.results.r1.manifest")
	if err != nil {
		t.Fatal(err)
	}
	var m fleet.Manifest
	json.Unmarshal(raw.Data, &m)
	if !m.Complete || m.Total != 30 || m.Head != fleettest.Head || m.FinishedAt == nil {
		t.Fatalf("manifest %+v", m)
	}
	// a job: absolute path, target head, the contract's keys, Nats-Msg-Id
	js2, _ := js.Stream(ctx, fleet.DefaultJobsStream)
	msg, err := js2.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var job fleet.Job
	json.Unmarshal(msg.Data, &job)
	if msg.Subject != "shoal.jobs.default" || job.RunID != "r1" || job.Target != fleettest.Head || !filepath.IsAbs(job.Path) ||
		job.Priority != fleet.PriorityNormal || job.RequestedAt.IsZero() {
		t.Fatalf("job %s %+v", msg.Subject, job)
	}
	if id := msg.Header.Get(jetstream.MsgIDHeader); id == "" || id != job.JobID {
		t.Fatalf("msg id %q", id)
	}
	// a bad run id or pattern is refused before anything is published
	if _, err := Produce(ctx, js, Options{Root: root, RunID: "a.b", Engine: e}); err == nil {
		t.Fatal("bad run id accepted")
	}
	if _, err := Produce(ctx, js, Options{Root: root, RunID: "ok", Pattern: "[", Engine: e}); err == nil {
		t.Fatal("bad pattern accepted")
	}
}

func TestEnqueueHighSubject(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	ctx := context.Background()
	fleet.ProvisionStreams(ctx, js, fleet.Settings{})
	job := fleet.Job{RunID: "e1", Tenant: "a/app.db", Path: "/x/a/app.db"}
	for range 2 { // enqueuing twice is two jobs (a new request each time)
		if err := Enqueue(ctx, js, fleet.DefaultNames(), "eu", job); err != nil {
			t.Fatal(err)
		}
	}
	stream, _ := js.Stream(ctx, fleet.DefaultJobsStream)
	raw, err := stream.GetLastMsgForSubject(ctx, "shoal.jobs.eu.high")
	if err != nil {
		t.Fatal(err)
	}
	var got fleet.Job
	json.Unmarshal(raw.Data, &got)
	if got.Priority != fleet.PriorityHigh || got.Tenant != "a/app.db" {
		t.Fatalf("%+v", got)
	}
}
