package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"

	"github.com/shoal-dev/shoal/internal/drill"
)

// recordingEngine records every path the worker hands to the engine.
type recordingEngine struct {
	*engine.Engine
	mu    sync.Mutex
	paths []string
}

func (r *recordingEngine) Migrate(ctx context.Context, path string, o engine.MigrateOptions) (*engine.Result, error) {
	r.mu.Lock()
	r.paths = append(r.paths, path)
	r.mu.Unlock()
	return r.Engine.Migrate(ctx, path, o)
}

func (r *recordingEngine) called() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

// snapshot maps every file under dir (recursively, links not followed) to
// its bytes (a symlink to its target).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link:" + l
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		case d.IsDir():
			out[rel+"/"] = "dir"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func publishRaw(t *testing.T, v *env, data []byte) {
	t.Helper()
	if _, _, err := fleet.Provision(context.Background(), v.js, v.set, fleet.DefaultNode); err != nil {
		t.Fatal(err)
	}
	if _, err := v.js.Publish(context.Background(), v.set.JobSubject(fleet.DefaultNode, false), data); err != nil {
		t.Fatal(err)
	}
}

func jobJSON(t *testing.T, j fleet.Job) []byte {
	t.Helper()
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Five hostile jobs published straight onto the jobs subject, each naming a
// DB outside the tenant root (and a sixth with a path only): every one ends
// `rejected` at attempt 1, the engine is never called for it, the outside
// files stay byte-identical with no side file (lock, journal, backup), the
// jobs leave the stream, and the worker then serves a legitimate job.
func TestHostileJobsRejected(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim.db")
	if _, err := v.e.Migrate(context.Background(), victim, engine.MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(outside, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(outside, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.Migrate(context.Background(), filepath.Join(outside, "dir", "app.db"), engine.MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	// Planted inside the root: a tenant file that is a symlink to the
	// victim, a tenant directory that is a symlink to an outside directory.
	os.MkdirAll(v.path("evil"), 0o755)
	if err := os.Symlink(victim, v.path("evil/app.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "dir"), v.path("evildir")); err != nil {
		t.Fatal(err)
	}
	fleettest.Fleet(t, v.e, v.root, 1, nil) // t-000/app.db, the legitimate one
	rel, _ := filepath.Rel(v.root, victim)
	hostile := []fleet.Job{
		{RunID: "hostile", Tenant: filepath.ToSlash(rel), Path: filepath.Join(v.root, rel)}, // ../ traversal
		{RunID: "hostile", Tenant: victim, Path: victim},                                    // an absolute path
		{RunID: "hostile", Tenant: "evil/app.db", Path: v.path("evil/app.db")},              // symlinked tenant file
		{RunID: "hostile", Tenant: "evildir/app.db", Path: v.path("evildir/app.db")},        // symlinked tenant directory
		{RunID: "hostile", Tenant: empty, Path: empty},                                      // a zero-byte file outside
		{RunID: "hostile", Path: filepath.Join(outside, "dir", "app.db")},                   // a path only, outside
	}
	before := snapshot(t, outside)
	for _, j := range hostile {
		publishRaw(t, v, jobJSON(t, j))
	}
	rec := &recordingEngine{Engine: v.e}
	v.worker("w", 2, func(o *Options, _ *nats.Conn) { o.Engine = rec })
	rep := v.wait("hostile", len(hostile), 20*time.Second)
	for _, r := range rep.Databases {
		if r.Outcome != fleet.OutcomeRejected || r.Attempt != 1 || r.Error == nil || !strings.Contains(*r.Error, "rejected") {
			t.Errorf("%s: %+v, want rejected at attempt 1", r.Tenant, r)
		}
	}
	// The worker still serves the next legitimate job.
	publishRaw(t, v, jobJSON(t, fleet.Job{RunID: "legit", Tenant: "t-000/app.db", Path: "/elsewhere/t-000/app.db", Target: fleettest.Head}))
	legit := v.wait("legit", 1, 20*time.Second)
	if r := legit.Databases[0]; r.Outcome != "migrated" || r.Path != v.path("t-000/app.db") {
		t.Fatalf("legitimate job after the hostile ones: %+v", r)
	}
	if got := rec.called(); !reflect.DeepEqual(got, []string{v.path("t-000/app.db")}) {
		t.Fatalf("engine called for %v: only the legitimate tenant may reach it", got)
	}
	if after := snapshot(t, outside); !reflect.DeepEqual(before, after) {
		t.Fatalf("files outside the root changed:\nbefore %v\nafter  %v", keys(before), keys(after))
	}
	if all := fleettest.All(t, v.js, "hostile"); len(all) != len(hostile) {
		t.Fatalf("%d results for %d hostile jobs: rejections are never retried", len(all), len(hostile))
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
}

func keys(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s(%d)", k, len(v)))
	}
	sort.Strings(out)
	return out
}

// Poison messages: a run id with a space, `a.*`, `legit.manifest`, a 900 KB
// tenant, a negative target, garbage: each is rejected at attempt 1 with a
// result on a subject that exists (<results>._rejected, or the run's own
// subject when its id is valid), never redelivered, nothing left in the
// jobs stream, no result on another run's subjects, and the worker serves
// the next job.
func TestPoisonJobsRejected(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 2, nil)
	ok := func(runID string, j fleet.Job) []byte {
		if j.Tenant == "" {
			j.Tenant = "t-000/app.db"
		}
		j.RunID = runID
		return jobJSON(t, j)
	}
	poison := map[string][]byte{
		"space":    ok("a b", fleet.Job{}),
		"wildcard": ok("a.*", fleet.Job{}),
		"manifest": ok("legit.manifest", fleet.Job{}),
		"huge":     ok("huge", fleet.Job{Tenant: strings.Repeat("x", 900<<10)}),
		"negative": ok("neg", fleet.Job{Target: -1}),
		"garbage":  []byte("{\"run_id\": \"x\", \"tenant\": \x00 not json"),
		"notjob":   []byte(`[1,2,3]`),
		"nothing":  []byte(`{"run_id":"nothing"}`),
	}
	for _, data := range poison {
		publishRaw(t, v, data)
	}
	w := v.worker("w", 2, nil)
	// Results of unusable run ids go to _rejected; "huge", "neg" and
	// "nothing" are valid run ids: their rejections go to their runs.
	var rejected []fleet.Result
	fleettest.Eventually(t, 20*time.Second, "the rejected results", func() bool {
		rejected = fleettest.All(t, v.js, fleet.RejectedRunID)
		return len(rejected) >= 5
	})
	for _, r := range rejected {
		if r.Outcome != fleet.OutcomeRejected || r.Attempt != 1 || r.Error == nil {
			t.Errorf("rejected result %+v", r)
		}
	}
	for _, run := range []string{"huge", "neg", "nothing"} {
		rep := v.wait(run, 1, 20*time.Second)
		r := rep.Databases[0]
		if r.Outcome != fleet.OutcomeRejected || r.Attempt != 1 || r.Error == nil || len(r.Tenant) > 4<<10 {
			t.Errorf("run %s: result %+v", run, fleet.BoundResult(r, 200))
		}
	}
	publishRaw(t, v, ok("after", fleet.Job{Tenant: "t-001/app.db"}))
	if r := v.wait("after", 1, 20*time.Second).Databases[0]; r.Outcome != "migrated" {
		t.Fatalf("the job after the poison: %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	if n := w.w.Metrics.redeliveries.Load(); n != 0 {
		t.Fatalf("%d redeliveries: poison must be terminated at once", n)
	}
	if all := fleettest.All(t, v.js, fleet.RejectedRunID); len(all) != 5 {
		t.Fatalf("%d results on _rejected, want 5 (one per poison message with an unusable run id)", len(all))
	}
	// Nothing was published on another run's subjects (legit.manifest, a.*).
	st, err := v.js.Stream(context.Background(), fleet.DefaultResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("shoal.results.>"))
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for s := range info.State.Subjects {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	want := []string{"shoal.results._rejected", "shoal.results.after", "shoal.results.huge", "shoal.results.neg", "shoal.results.nothing"}
	if !reflect.DeepEqual(subjects, want) {
		t.Fatalf("result subjects %v, want %v", subjects, want)
	}
}

// A job whose target is beyond the worker's migrations cannot succeed on
// retry: it fails at attempt 1, with an error naming the worker's head.
func TestTargetBeyondHeadFailsAtOnce(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	publishRaw(t, v, jobJSON(t, fleet.Job{RunID: "beyond", Tenant: "t-000/app.db", Target: fleettest.Head + 2}))
	rec := &recordingEngine{Engine: v.e}
	v.worker("w", 1, func(o *Options, _ *nats.Conn) { o.Engine = rec })
	r := v.wait("beyond", 1, 20*time.Second).Databases[0]
	if r.Outcome != "failed" || r.Attempt != 1 || r.Error == nil ||
		!strings.Contains(*r.Error, fmt.Sprintf("version %d", fleettest.Head+2)) || !strings.Contains(*r.Error, fmt.Sprintf("end at %d", fleettest.Head)) {
		t.Fatalf("result %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	if all := fleettest.All(t, v.js, "beyond"); len(all) != 1 {
		t.Fatalf("%d results: not retried", len(all))
	}
	if len(rec.called()) != 0 {
		t.Fatal("the engine was called for a target it does not have")
	}
}

// hugeErrorEngine refuses every DB with an error larger than NATS's
// maximum message size.
type hugeErrorEngine struct{}

func (hugeErrorEngine) Head() int64 { return fleettest.Head }
func (hugeErrorEngine) Migrate(_ context.Context, path string, _ engine.MigrateOptions) (*engine.Result, error) {
	return nil, &engine.Error{Path: path, Kind: engine.ErrCorrupt, Detail: strings.Repeat("y", 2<<20)}
}

// A result too large to publish is cut down and published at once: it
// never holds the job (and the worker's slot) until the ack wait.
func TestHugeResultCutDown(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	v.set.AckWait = 30 * time.Second
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	v.produce("huge-result", nil)
	v.worker("w", 1, func(o *Options, _ *nats.Conn) { o.Engine = hugeErrorEngine{} })
	r := v.wait("huge-result", 1, 20*time.Second).Databases[0]
	if r.Outcome != "corrupt" || r.Attempt != 1 || r.Error == nil || len(*r.Error) > fleet.MaxResultErrorBytes+200 ||
		!strings.Contains(*r.Error, "bytes cut") {
		t.Fatalf("result outcome %s attempt %d error %d bytes", r.Outcome, r.Attempt, len(*r.Error))
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
}

// The remaining window: a directory swapped for a symlink after the worker
// resolved the tenant and before the engine opened it. The worker cannot
// stop the engine from following it, but it notices afterwards and says so:
// the result is failed, naming what happened, and the job is not retried.
func TestSwapDuringRunDetected(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	outside := t.TempDir()
	if _, err := v.e.Migrate(context.Background(), filepath.Join(outside, "app.db"), engine.MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	v.produce("swap", nil)
	v.worker("w", 1, func(o *Options, _ *nats.Conn) {
		o.beforeMigrate = func(string) {
			dir := v.path("t-000")
			if err := os.Rename(dir, dir+".moved"); err != nil {
				t.Error(err)
			}
			if err := os.Symlink(outside, dir); err != nil {
				t.Error(err)
			}
		}
	})
	r := v.wait("swap", 1, 20*time.Second).Databases[0]
	if r.Outcome != "failed" || r.Attempt != 1 || r.Error == nil || !strings.Contains(*r.Error, ErrTenantMoved.Error()) {
		t.Fatalf("result %+v", r)
	}
	if all := fleettest.All(t, v.js, "swap"); len(all) != 1 {
		t.Fatalf("%d results: not retried", len(all))
	}
}

// 10 tenants whose jobs are published 3 extra times: the report keeps one
// entry per tenant that says what happened in the run (migrated, never
// replaced by the later `current`s) and whose applied list is what was
// actually applied.
func TestReportHonestWithDuplicateJobs(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	tenants := fleettest.Fleet(t, v.e, v.root, 10, nil)
	v.produce("dups", nil)
	for range 3 {
		for _, tn := range tenants {
			publishRaw(t, v, jobJSON(t, fleet.Job{RunID: "dups", Tenant: tn, Path: v.path(tn), Target: fleettest.Head}))
		}
	}
	v.worker("w1", 3, nil)
	v.worker("w2", 2, nil)
	fleettest.Eventually(t, 30*time.Second, "40 results", func() bool { return len(fleettest.All(t, v.js, "dups")) >= 40 })
	rep := fleettest.Results(t, v.js, "dups").Report(time.Now())
	if len(rep.Databases) != 10 || rep.Summary.Counts["migrated"] != 10 || rep.Summary.Counts["current"] != 0 {
		t.Fatalf("summary %+v, want 10 migrated", rep.Summary)
	}
	applied := 0
	for _, d := range rep.Databases {
		var vs []int64
		for _, a := range d.Applied {
			vs = append(vs, a.Version)
		}
		if h := fleettest.History(t, v.path(d.Tenant)); !reflect.DeepEqual(vs, h) || d.From == nil || *d.From != 0 {
			t.Errorf("%s: report applied %v from %v, history %v", d.Tenant, vs, d.From, h)
		}
		applied += len(vs)
	}
	if applied != 30 {
		t.Fatalf("report lists %d applied migrations, 30 were applied", applied)
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
}

// Once the workers are done with a run (every tenant has its result, the
// workers stopped), no job message is left in the jobs stream: acks and
// terms are confirmed by the server, across a restart in the middle of the
// run and after another restart.
func TestNoJobLeftAfterRestarts(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	port := fleettest.FreePort(t)
	srv := fleettest.StartEmbedded(t, store, port)
	v := newEnv(t, srv.URL)
	v.set.MaxDeliver = 2
	fleettest.Fleet(t, v.e, v.root, 20, nil)
	fleettest.Breakable(t, v.e, v.path("zz-bad/app.db"))
	fleettest.Unmanaged(t, v.path("zz-legacy/app.db"))
	v.produce("settle", nil)
	var mu sync.Mutex
	handled := 0
	gate := make(chan struct{})
	w1 := v.worker("w1", 4, func(o *Options, _ *nats.Conn) {
		o.afterMigrate = func(context.Context, fleet.Job, int) {
			mu.Lock()
			handled++
			n := handled
			mu.Unlock()
			if n > 6 {
				<-gate // settle these across the restart
			}
		}
	})
	fleettest.Eventually(t, 20*time.Second, "jobs in flight", func() bool { mu.Lock(); defer mu.Unlock(); return handled >= 10 })
	srv.Stop()
	srv = fleettest.StartEmbedded(t, store, port)
	close(gate)
	rep := v.wait("settle", 22, 45*time.Second)
	if rep.Summary.Counts["migrated"]+rep.Summary.Counts["current"] != 20 || rep.Summary.Counts["failed"] != 1 || rep.Summary.Counts["unmanaged"] != 1 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	w1.stop()
	if n := fleettest.JobsLeft(t, v.js); n != 0 {
		t.Fatalf("%d job messages left after every tenant reported and the worker stopped", n)
	}
	srv.Stop()
	fleettest.StartEmbedded(t, store, port)
	var n uint64
	fleettest.Eventually(t, 20*time.Second, "the jobs stream readable again", func() bool {
		var err error
		n, err = fleettest.TryJobsLeft(v.js)
		return err == nil
	})
	if n != 0 {
		t.Fatalf("%d job messages back after a server restart", n)
	}
}

// The NATS server is killed (SIGKILL: nothing flushed) in the middle of a
// run and restarted on its store: once every tenant has its result, the
// workers leave no job message in the jobs stream. nats-server 2.9 restores
// the consumers' ack floors without the deletes of the messages they acked
// (dozens stay in the stream for good without the worker's sweep).
//
// One trial by default; SHOAL_DRILL_SCALE=N runs N (internal/drill).
func TestNoJobLeftAfterKill9(t *testing.T) {
	t.Parallel()
	for i := range kill9Trials(t) {
		t.Run(fmt.Sprint("trial-", i+1), func(t *testing.T) {
			testNoJobLeftAfterKill9(t, fleettest.StartKillable(t, t.TempDir()))
		})
	}
}

func TestNoJobLeftAfterKill9SystemServer(t *testing.T) {
	t.Parallel()
	for i := range kill9Trials(t) {
		t.Run(fmt.Sprint("trial-", i+1), func(t *testing.T) {
			testNoJobLeftAfterKill9(t, fleettest.StartKillableBinary(t, t.TempDir()))
		})
	}
}

func kill9Trials(t *testing.T) int { return drill.Trials(t, 1) }

func testNoJobLeftAfterKill9(t *testing.T, k *fleettest.Killable) {
	v := newEnv(t, k.URL)
	v.set.MaxDeliver = 2
	fleettest.Fleet(t, v.e, v.root, 150, nil)
	fleettest.Breakable(t, v.e, v.path("zz-bad/app.db"))
	fleettest.Unmanaged(t, v.path("zz-legacy/app.db"))
	v.produce("kill9", nil)
	var mu sync.Mutex
	handled := 0
	v.worker("w1", 4, func(o *Options, _ *nats.Conn) {
		o.afterMigrate = func(context.Context, fleet.Job, int) {
			mu.Lock()
			handled++
			mu.Unlock()
		}
	})
	fleettest.Eventually(t, 30*time.Second, "a third of the jobs handled", func() bool { mu.Lock(); defer mu.Unlock(); return handled >= 50 })
	k.Restart() // SIGKILL, then start again on the same store
	rep := v.wait("kill9", 152, 60*time.Second)
	// A result the server acknowledged but lost in the crash is redone by
	// the job's redelivery, which finds the DB current: migrated + current.
	if rep.Summary.Counts["migrated"]+rep.Summary.Counts["current"] != 150 || rep.Summary.Counts["failed"] != 1 || rep.Summary.Counts["unmanaged"] != 1 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	for _, d := range rep.Databases[:150] {
		if h := fleettest.History(t, d.Path); len(h) != fleettest.Head {
			t.Fatalf("%s history %v", d.Tenant, h)
		}
	}
	fleettest.Eventually(t, 20*time.Second, "no job message left", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	// No failure was invented for a job that had its result.
	if after := fleettest.Results(t, v.js, "kill9").Report(time.Now()); after.Summary.Counts["migrated"]+after.Summary.Counts["current"] != 150 ||
		after.Summary.Counts["failed"] != 1 || after.Summary.Counts["unmanaged"] != 1 {
		t.Fatalf("after the sweep: %+v", after.Summary)
	}
}
