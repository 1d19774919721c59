package producer_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
	"github.com/shoal-dev/shoal/producer"
	"github.com/shoal-dev/shoal/tenants"
	"github.com/shoal-dev/shoal/worker"
)

type passEnv struct {
	t    *testing.T
	url  string
	js   jetstream.JetStream
	e    *engine.Engine
	root string
}

func newPassEnv(t *testing.T) *passEnv {
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	if _, _, err := fleet.Provision(context.Background(), js, fleet.Settings{}, fleet.DefaultNode); err != nil {
		t.Fatal(err)
	}
	return &passEnv{t: t, url: srv.URL, js: js, e: fleettest.Engine(t), root: t.TempDir()}
}

// startWorker runs an in-process worker until the test ends.
func (v *passEnv) startWorker() {
	v.t.Helper()
	nc, js := fleettest.Connect(v.t, v.url)
	w, err := worker.New(nc, js, worker.Options{Engine: v.e, Root: v.root, Concurrency: 2, Name: "w", NoBackup: true,
		PollWait: 100 * time.Millisecond, Backoff: 50 * time.Millisecond})
	if err != nil {
		v.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	v.t.Cleanup(func() { cancel(); <-done })
}

func (v *passEnv) opts(runID string) producer.Options {
	return producer.Options{Root: v.root, Pattern: "*/app.db", RunID: runID, Engine: v.e, Worker: "producer:test"}
}

// pass runs one producer pass and waits (at most a minute, a safety net:
// the pass ends as soon as its last result is read) for its results.
func (v *passEnv) pass(o producer.Options) (*producer.Stats, *fleet.Report) {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := fleet.NewTracker(o.RunID, time.Now())
	st, perr, ferr := producer.ProducePass(ctx, ctx, v.js, o, tr, fleet.FollowOptions{TickEvery: 20 * time.Millisecond})
	if perr != nil || ferr != nil {
		v.t.Fatalf("pass: %v %v", perr, ferr)
	}
	if ctx.Err() != nil {
		v.t.Fatalf("pass did not complete: %+v", tr.Progress(time.Now()))
	}
	return st, tr.Report(time.Now())
}

func (v *passEnv) path(tenant string) string {
	return filepath.Join(v.root, filepath.FromSlash(tenant))
}

// fallBehind puts a tenant back at version (as a restore from an old backup
// does; the test migrations have no down parts for `shoal down`).
func (v *passEnv) fallBehind(tenant string, version int64) {
	v.t.Helper()
	p := v.path(tenant)
	if err := os.Remove(p); err != nil {
		v.t.Fatal(err)
	}
	if _, err := v.e.Migrate(context.Background(), p, engine.MigrateOptions{To: version}); err != nil {
		v.t.Fatal(err)
	}
}

func (v *passEnv) atHead() {
	v.t.Helper()
	st, err := tenants.Status(context.Background(), v.e, v.root, "*/app.db", 2, false)
	if err != nil || !st.AtHead() {
		v.t.Fatalf("fleet status not at head: %+v %v", st, err)
	}
}

// TestRecheckSameRunIDPublishesWhatFellBehind is the reproduction:
// the documented straggler re-check (--only-behind, a run id per day) run,
// then one tenant taken down and a new tenant created at an old version,
// then the same command again: both are published and migrated, and the
// second pass's report counts only them (not 6/2 done).
func TestRecheckSameRunIDPublishesWhatFellBehind(t *testing.T) {
	t.Parallel()
	v := newPassEnv(t)
	fleettest.Fleet(t, v.e, v.root, 6, func(i int) int64 { return int64(i % 4) }) // 0,1,2,3,0,1
	v.startWorker()
	o := v.opts("stragglers-2026-12-07")
	o.OnlyBehind = true
	st, rep := v.pass(o)
	if st.Jobs != 5 || st.Published != 5 || st.Skipped != 1 || rep.Summary.Total != 5 || rep.Summary.Counts["migrated"] != 5 || !rep.OK() {
		t.Fatalf("first pass: %+v %+v", st, rep.Summary)
	}
	v.atHead()

	v.fallBehind("t-000/app.db", 1)
	newTenant := v.path("t-new/app.db")
	os.MkdirAll(filepath.Dir(newTenant), 0o755)
	if _, err := v.e.Migrate(context.Background(), newTenant, engine.MigrateOptions{To: 2}); err != nil {
		t.Fatal(err)
	}
	st, rep = v.pass(o)
	if st.Jobs != 2 || st.Published != 2 || st.Duplicates != 0 || st.Skipped != 5 {
		t.Fatalf("second pass published %+v, want the 2 tenants behind as new jobs", st)
	}
	if rep.Summary.Total != 2 || rep.Summary.Counts["migrated"] != 2 || rep.Summary.Pending != 0 || !rep.OK() {
		t.Fatalf("second pass report %+v: must count only this pass", rep.Summary)
	}
	for _, r := range rep.Databases {
		if r.Tenant != "t-000/app.db" && r.Tenant != "t-new/app.db" {
			t.Fatalf("second pass reports %s from the earlier pass", r.Tenant)
		}
	}
	v.atHead()
}

// TestRecheckTwiceReportsEveryTenant: the default pass (at-head tenants
// reported current by the producer itself) run twice with the same id, a
// tenant falling behind in between: the second pass migrates it, lists
// every tenant once, and the producer's current results carry its name.
// The pass waits for the job ids of its jobs only: its own results go
// straight into its tracker, and are still in the results stream for
// other readers (`shoal results`).
func TestRecheckTwiceReportsEveryTenant(t *testing.T) {
	t.Parallel()
	v := newPassEnv(t)
	fleettest.Fleet(t, v.e, v.root, 4, func(i int) int64 { return fleettest.Head })
	v.startWorker()
	o := v.opts("nightly")
	o.ReportAtHead = true
	expected := 0
	o.OnExpect = func(string) { expected++ }
	st, rep := v.pass(o)
	if st.Jobs != 0 || st.Current != 4 || rep.Summary.Total != 4 || rep.Summary.Counts["current"] != 4 || !rep.OK() {
		t.Fatalf("first pass: %+v %+v", st, rep.Summary)
	}
	if expected != 0 {
		t.Fatalf("the pass waited for %d job ids, want none (its results are its own)", expected)
	}
	other := fleet.NewTracker("nightly", time.Now())
	if err := fleet.Follow(context.Background(), v.js, fleet.Names{}, "nightly", other, fleet.FollowOptions{}); err != nil ||
		other.Progress(time.Now()).Done != 4 {
		t.Fatalf("another reader of the run: %d tenants, %v", other.Progress(time.Now()).Done, err)
	}
	for _, r := range rep.Databases {
		if r.Worker != "producer:test" || r.JobID == "" || r.To == nil || *r.To != fleettest.Head || r.Applied == nil {
			t.Fatalf("producer's current result %+v", r)
		}
	}
	v.fallBehind("t-002/app.db", 1)
	st, rep = v.pass(o)
	if st.Jobs != 1 || st.Published != 1 || st.Current != 3 || expected != 1 {
		t.Fatalf("second pass: %+v, waited for %d job ids", st, expected)
	}
	if rep.Summary.Total != 4 || rep.Summary.Counts["migrated"] != 1 || rep.Summary.Counts["current"] != 3 || !rep.OK() {
		t.Fatalf("second pass report %+v", rep.Summary)
	}
	if r, _ := findResult(rep, "t-002/app.db"); r.Outcome != "migrated" || r.Worker != "w" {
		t.Fatalf("t-002: %+v", r)
	}
	v.atHead()
	// --only-behind now: nothing behind, nothing published or reported.
	ob := v.opts("nightly")
	ob.OnlyBehind, ob.ReportAtHead = true, true
	st, rep = v.pass(ob)
	if st.Expected() != 0 || st.Skipped != 4 || rep.Summary.Total != 0 || len(rep.Databases) != 0 {
		t.Fatalf("only-behind at head: %+v %+v", st, rep.Summary)
	}
}

// TestCrashedProducerRerunNoDuplicates: a producer publishes and dies
// before waiting; a second producer with the same run id adds no job (every
// publish is a duplicate), waits for the jobs the first one published, and
// completes once a worker handles them. A third, after the worker is done,
// finds the refused tenant's job already handled (its DB did not change) and
// takes its result from the results stream.
func TestCrashedProducerRerunNoDuplicates(t *testing.T) {
	t.Parallel()
	v := newPassEnv(t)
	fleettest.Fleet(t, v.e, v.root, 5, func(i int) int64 { return int64(i % 3) })
	fleettest.Unmanaged(t, v.path("zz-legacy/app.db"))
	o := v.opts("release-7")
	o.ReportAtHead = true
	first, err := producer.Produce(context.Background(), v.js, o)
	if err != nil || first.Published != 6 {
		t.Fatalf("first producer: %+v %v", first, err)
	}
	// The second producer: a worker starts only once every publish was
	// acknowledged, so the counts below do not depend on timing.
	var once sync.Once
	var acked int
	var mu sync.Mutex
	o2 := o
	o2.OnPublished = func(_ fleet.Job, dup bool) {
		mu.Lock()
		acked++
		n := acked
		mu.Unlock()
		if n == 6 {
			once.Do(v.startWorker)
		}
	}
	st, rep := v.pass(o2)
	if st.Jobs != 6 || st.Published != 0 || st.Duplicates != 6 {
		t.Fatalf("re-run: %+v, want 6 duplicates and no new job", st)
	}
	if rep.Summary.Total != 6 || rep.Summary.Counts["migrated"] != 5 || rep.Summary.Counts["unmanaged"] != 1 {
		t.Fatalf("re-run report %+v", rep.Summary)
	}
	if n := len(fleettest.All(t, v.js, "release-7")); n != 6 {
		t.Fatalf("%d results in the stream, want one per job (6)", n)
	}
	// Third producer: the migrated ones are at head now (reported current
	// by the producer), the unmanaged one is unchanged: its job is a
	// duplicate whose result is already stored.
	st, rep = v.pass(o)
	if st.Jobs != 1 || st.Duplicates != 1 || st.Current != 5 {
		t.Fatalf("third: %+v", st)
	}
	if r, ok := findResult(rep, "zz-legacy/app.db"); !ok || r.Outcome != "unmanaged" || rep.Summary.Total != 6 || rep.Summary.Counts["current"] != 5 {
		t.Fatalf("third report %+v %+v", rep.Summary, r)
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
}

func findResult(rep *fleet.Report, tenant string) (fleet.Result, bool) {
	for _, r := range rep.Databases {
		if r.Tenant == tenant {
			return r, true
		}
	}
	return fleet.Result{}, false
}

// TestReportAtHeadNotForChangedFiles: a DB at head whose applied migration
// file was edited since is not reported current by the producer (a worker
// would refuse it as changed): it gets a job.
func TestReportAtHeadNotForChangedFiles(t *testing.T) {
	t.Parallel()
	v := newPassEnv(t)
	fleettest.Fleet(t, v.e, v.root, 2, func(int) int64 { return fleettest.Head })
	m := fleettest.Migrations()
	m["0002_notes.sql"].Data = append([]byte("-- edited after it was applied\n"), m["0002_notes.sql"].Data...)
	edited, err := engine.New(engine.Options{Dir: m, DirName: "edited"})
	if err != nil {
		t.Fatal(err)
	}
	o := v.opts("edited")
	o.Engine, o.ReportAtHead = edited, true
	st, err := producer.Produce(context.Background(), v.js, o)
	if err != nil || st.Jobs != 2 || st.Current != 0 {
		t.Fatalf("%+v %v: DBs whose applied file changed must go to a worker", st, err)
	}
}

// TestNewHeadSameRunIDWaitsForWorkers: the same run id after new migrations
// were deployed: DBs the producer reported current before are behind now;
// their jobs are new and the pass waits for the workers' results, not the
// producer's earlier `current`.
func TestNewHeadSameRunIDWaitsForWorkers(t *testing.T) {
	t.Parallel()
	v := newPassEnv(t)
	m := fleettest.Migrations()
	delete(m, "0003_tags.sql")
	old, err := engine.New(engine.Options{Dir: m, DirName: "old"})
	if err != nil {
		t.Fatal(err)
	}
	fleettest.Fleet(t, old, v.root, 3, func(int) int64 { return 2 })
	o := v.opts("daily")
	o.Engine, o.ReportAtHead = old, true
	st, rep := v.pass(o)
	if st.Current != 3 || rep.Summary.Counts["current"] != 3 {
		t.Fatalf("at the old head: %+v %+v", st, rep.Summary)
	}
	v.startWorker() // with the new migrations (head 3)
	o.Engine = v.e
	st, rep = v.pass(o)
	if st.Published != 3 || rep.Summary.Counts["migrated"] != 3 || rep.Summary.Total != 3 {
		t.Fatalf("after the deploy: %+v %+v", st, rep.Summary)
	}
	v.atHead()
}

// TestPassOfProducerResultsEndsAtOnce: a pass whose every result is the
// producer's own, handed to the caller through OnCurrent (`shoal run` over a
// fleet at head), ends when the producer is done, not at the follower's
// next tick (a second by default: most of a small re-check's time).
func TestPassOfProducerResultsEndsAtOnce(t *testing.T) {
	t.Parallel()
	v := newPassEnv(t)
	fleettest.Fleet(t, v.e, v.root, 6, func(int) int64 { return fleettest.Head })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := fleet.NewTracker("at-head", time.Now())
	o := v.opts("at-head")
	o.ReportAtHead, o.OnCurrent = true, tr.Add
	st, perr, ferr := producer.ProducePass(ctx, ctx, v.js, o, tr, fleet.FollowOptions{TickEvery: time.Hour})
	if perr != nil || ferr != nil {
		t.Fatalf("pass: %v %v", perr, ferr)
	}
	if ctx.Err() != nil {
		t.Fatal("the pass waited for the follower's tick after its last result")
	}
	if st.Current != 6 || !tr.Complete() || tr.Report(time.Now()).Summary.Counts["current"] != 6 {
		t.Fatalf("stats %+v, report %+v", st, tr.Report(time.Now()).Summary)
	}
}

// TestSolePassCountsEveryResult: SolePass (`shoal run` on the embedded
// server it started, where no earlier pass can have left results) keeps no
// job id and counts every result of the run id; without it a result that
// is no job of this pass's (here one left in the stream before it) is not
// counted.
func TestSolePassCountsEveryResult(t *testing.T) {
	t.Parallel()
	for _, sole := range []bool{false, true} {
		v := newPassEnv(t)
		fleettest.Fleet(t, v.e, v.root, 2, func(i int) int64 { return int64(i) + fleettest.Head - 1 }) // one behind, one at head
		v.startWorker()
		ghost := fleet.Result{RunID: "sole", JobID: "left-before", Tenant: "ghost/app.db", Outcome: engine.OutcomeCurrent, At: time.Now()}
		data, _ := json.Marshal(ghost)
		if _, err := v.js.Publish(context.Background(), fleet.Names{}.ResultSubject("sole"), data); err != nil {
			t.Fatal(err)
		}
		tr := fleet.NewTracker("sole", time.Now())
		o := v.opts("sole")
		o.ReportAtHead, o.OnCurrent, o.SolePass = true, tr.Add, sole
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, perr, ferr := producer.ProducePass(ctx, ctx, v.js, o, tr, fleet.FollowOptions{TickEvery: 20 * time.Millisecond})
		cancel()
		if perr != nil || ferr != nil || st.Jobs != 1 || st.Current != 1 {
			t.Fatalf("sole %v: %+v %v %v", sole, st, perr, ferr)
		}
		if tr.Has("ghost/app.db") != sole {
			t.Fatalf("sole %v: the result left before the pass counted: %v", sole, tr.Has("ghost/app.db"))
		}
		if !sole && (!tr.Has("t-000/app.db") || !tr.Has("t-001/app.db")) {
			t.Fatalf("the pass's own tenants: %+v", tr.Report(time.Now()).Summary)
		}
	}
}
