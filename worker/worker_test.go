package worker

import (
	"context"
	"database/sql"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
	"github.com/shoal-dev/shoal/producer"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

type env struct {
	t    *testing.T
	url  string
	e    *engine.Engine
	root string
	nc   *nats.Conn
	js   jetstream.JetStream
	set  fleet.Settings
}

func newEnv(t *testing.T, url string) *env {
	nc, js := fleettest.Connect(t, url)
	return &env{t: t, url: url, e: fleettest.Engine(t), root: t.TempDir(), nc: nc, js: js,
		set: fleet.Settings{AckWait: 2 * time.Second, MaxDeliver: 3}}
}

type running struct {
	w    *Worker
	nc   *nats.Conn
	stop func() // cancel Run and wait for it to return
	done chan error
}

func (v *env) worker(name string, conc int, tweak func(o *Options, nc *nats.Conn)) *running {
	v.t.Helper()
	nc, js := fleettest.Connect(v.t, v.url)
	o := Options{Engine: v.e, Root: v.root, Concurrency: conc, Name: name, Settings: v.set, Backoff: 50 * time.Millisecond,
		NoBackup: true, PollWait: 200 * time.Millisecond, ShutdownTimeout: 10 * time.Second, SweepEvery: 200 * time.Millisecond}
	if tweak != nil {
		tweak(&o, nc)
	}
	w, err := New(nc, js, o)
	if err != nil {
		v.t.Fatal(err)
	}
	if err := w.Provision(context.Background()); err != nil {
		v.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, nc: nc, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-r.done:
				if err != nil {
					v.t.Errorf("worker %s: %v", name, err)
				}
			case <-time.After(20 * time.Second):
				v.t.Errorf("worker %s did not stop", name)
			}
		})
	}
	v.t.Cleanup(r.stop)
	return r
}

func (v *env) produce(runID string, tweak func(*producer.Options)) *producer.Stats {
	v.t.Helper()
	o := producer.Options{Root: v.root, Pattern: "*/app.db", RunID: runID, Engine: v.e, Names: v.set.Names}
	if tweak != nil {
		tweak(&o)
	}
	if _, _, err := fleet.Provision(context.Background(), v.js, v.set, fleet.DefaultNode); err != nil {
		v.t.Fatal(err)
	}
	st, err := producer.Produce(context.Background(), v.js, o)
	if err != nil {
		v.t.Fatal(err)
	}
	return st
}

// wait returns the run's results once n tenants reported.
func (v *env) wait(runID string, n int, within time.Duration) *fleet.Report {
	v.t.Helper()
	var rep *fleet.Report
	fleettest.Eventually(v.t, within, "results of "+runID, func() bool {
		tr, err := fleettest.TryResults(v.js, runID)
		if err != nil {
			return false // the server restarting: read again
		}
		rep = tr.Report(time.Now())
		return len(rep.Databases) >= n
	})
	return rep
}

func (v *env) path(tenant string) string { return filepath.Join(v.root, filepath.FromSlash(tenant)) }

// testCore: dedup, every tenant reaches head with one result each, the
// report, the queue empties; a failing DB ends failed after max deliver, a
// refused one at once; an enqueued job goes first.
func testCore(t *testing.T, url string) {
	v := newEnv(t, url)
	tenants := fleettest.Fleet(t, v.e, v.root, 24, func(i int) int64 { return int64(i % 4) })
	fleettest.Breakable(t, v.e, v.path("zz-bad/app.db"))
	fleettest.Unmanaged(t, v.path("zz-legacy/app.db"))
	st := v.produce("core", nil)
	if st.Jobs != 26 || st.Published != 26 || st.Duplicates != 0 {
		t.Fatalf("first produce: %+v", st)
	}
	st = v.produce("core", nil)
	if st.Jobs != 26 || st.Published != 0 || st.Duplicates != 26 {
		t.Fatalf("same run id again: %+v", st)
	}
	if n := fleettest.JobsLeft(t, v.js); n != 26 {
		t.Fatalf("%d jobs in the stream, want 26 (one per tenant)", n)
	}
	if err := producer.Enqueue(context.Background(), v.js, v.set.Names, "", fleet.Job{RunID: "core", Tenant: "zz-urgent/app.db", Path: v.path("zz-urgent/app.db")}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(v.path("zz-urgent/app.db")), 0o755)
	if err := os.WriteFile(v.path("zz-urgent/app.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var first string
	hook := func(o *Options, _ *nats.Conn) {
		o.afterMigrate = func(_ context.Context, job fleet.Job, _ int) {
			mu.Lock()
			if first == "" {
				first = job.Tenant
			}
			mu.Unlock()
		}
	}
	v.worker("w1", 1, hook)
	fleettest.Eventually(t, 10*time.Second, "a first job", func() bool { mu.Lock(); defer mu.Unlock(); return first != "" })
	v.worker("w2", 3, nil)
	rep := v.wait("core", 27, 30*time.Second)
	mu.Lock()
	if first != "zz-urgent/app.db" {
		t.Fatalf("first job %s: the enqueued one must go first", first)
	}
	mu.Unlock()
	failed := rep.Failed()
	if len(failed) != 2 || failed[0].Tenant != "zz-bad/app.db" || failed[0].Outcome != "failed" || failed[0].Attempt != 1 || failed[0].Retryable ||
		failed[1].Tenant != "zz-legacy/app.db" || failed[1].Outcome != "unmanaged" || failed[1].Attempt != 1 {
		t.Fatalf("failed: %+v", failed)
	}
	all := fleettest.All(t, v.js, "core")
	if len(all) != 27 {
		t.Fatalf("%d result messages, want exactly one per tenant (27)", len(all))
	}
	res := fleettest.Results(t, v.js, "core")
	for _, tn := range tenants {
		r, _ := res.Result(tn)
		if !reflect.DeepEqual(fleettest.History(t, v.path(tn)), []int64{1, 2, 3}) {
			t.Fatalf("%s history %v", tn, fleettest.History(t, v.path(tn)))
		}
		if r.To == nil || *r.To != fleettest.Head || r.Attempt != 1 || r.Worker == "" || r.Path != v.path(tn) {
			t.Fatalf("%s result %+v", tn, r)
		}
		if r.From == nil || (*r.From == fleettest.Head) != (r.Outcome == "current") || (*r.From < fleettest.Head) != (r.Outcome == "migrated") {
			t.Fatalf("%s outcome %s from %v", tn, r.Outcome, r.From)
		}
		if r.Outcome == "migrated" && len(r.Applied) != int(fleettest.Head-*r.From) {
			t.Fatalf("%s applied %v", tn, r.Applied)
		}
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
}

func TestCoreEmbedded(t *testing.T) {
	t.Parallel()
	testCore(t, fleettest.StartEmbedded(t, "", 0).URL)
}

// TestCoreSystemServer runs the same tests against the system's
// nats-server binary (Debian ships 2.9.10) as a separate process; skipped
// when there is none.
func TestCoreSystemServer(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartBinary(t)
	t.Logf("nats-server %s", srv.Version)
	testCore(t, srv.URL)
}

func TestKilledWorkerSystemServer(t *testing.T) {
	t.Parallel()
	testKilledWorker(t, fleettest.StartBinary(t).URL)
}

func TestAbandonedJobSystemServer(t *testing.T) {
	t.Parallel()
	testAbandonedJob(t, fleettest.StartBinary(t).URL)
}

func TestOnlyBehind(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	// 0,1,2 behind; 3 at head; i%4
	fleettest.Fleet(t, v.e, v.root, 12, func(i int) int64 { return int64(i % 4) })
	st := v.produce("behind", func(o *producer.Options) { o.OnlyBehind = true })
	if st.Jobs != 9 || st.Skipped != 3 {
		t.Fatalf("only-behind: %+v, want 9 jobs and 3 skipped", st)
	}
	if n := fleettest.JobsLeft(t, v.js); n != 9 {
		t.Fatalf("%d jobs in the stream", n)
	}
	v.worker("w", 4, nil)
	rep := v.wait("behind", 9, 30*time.Second)
	if !rep.OK() || rep.Summary.Counts["migrated"] != 9 {
		t.Fatalf("report %+v", rep.Summary)
	}
	// now everything is at head: nothing to publish
	st = v.produce("behind-2", func(o *producer.Options) { o.OnlyBehind = true })
	if st.Jobs != 0 || st.Skipped != 12 {
		t.Fatalf("second pass: %+v", st)
	}
}

func TestHighPriorityFirst(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 10, nil)
	v.produce("bulk", nil)
	urgent := v.path("t-009/app.db")
	if err := producer.Enqueue(context.Background(), v.js, v.set.Names, "", fleet.Job{RunID: "urgent", Tenant: "t-009/app.db", Path: urgent}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	v.worker("w", 1, func(o *Options, nc *nats.Conn) {
		o.afterMigrate = func(_ context.Context, job fleet.Job, _ int) {
			mu.Lock()
			order = append(order, job.RunID+"/"+job.Tenant)
			mu.Unlock()
		}
	})
	v.wait("bulk", 10, 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 11 || order[0] != "urgent/t-009/app.db" {
		t.Fatalf("order %v: the enqueued job must be taken first", order)
	}
	r, ok := fleettest.Results(t, v.js, "urgent").Result("t-009/app.db")
	if !ok || r.Outcome != "migrated" {
		t.Fatalf("urgent result %+v", r)
	}
}

// A worker dies after migrating, before publishing or acking: the job is
// redelivered after the ack wait and handled again, as a no-op.
func TestKilledWorkerRedelivered(t *testing.T) {
	t.Parallel()
	testKilledWorker(t, fleettest.StartEmbedded(t, "", 0).URL)
}

func testKilledWorker(t *testing.T, url string) {
	v := newEnv(t, url)
	v.set.AckWait = time.Second
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	v.produce("kill", nil)
	killed := make(chan struct{})
	v.worker("doomed", 1, func(o *Options, nc *nats.Conn) {
		o.afterMigrate = func(_ context.Context, _ fleet.Job, _ int) {
			nc.Close() // the process "dies": no result, no ack
			close(killed)
		}
	})
	<-killed
	if h := fleettest.History(t, v.path("t-000/app.db")); len(h) != 3 {
		t.Fatalf("doomed worker migrated: history %v", h)
	}
	v.worker("rescuer", 1, nil)
	rep := v.wait("kill", 1, 20*time.Second)
	r := rep.Databases[0]
	if r.Outcome != "current" || r.Attempt != 2 || r.Worker != "rescuer" {
		t.Fatalf("redelivered result %+v", r)
	}
	if h := fleettest.History(t, v.path("t-000/app.db")); !reflect.DeepEqual(h, []int64{1, 2, 3}) {
		t.Fatalf("history %v: each migration exactly once", h)
	}
	if all := fleettest.All(t, v.js, "kill"); len(all) != 1 {
		t.Fatalf("%d results", len(all))
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
}

func TestMaxDeliverFinalFailed(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	if err := os.Rename(filepath.Join(v.root, "t-000"), filepath.Join(v.root, "stuck")); err != nil {
		t.Fatal(err)
	}
	v.produce("maxdel", nil)
	w := v.worker("w", 1, func(o *Options, _ *nats.Conn) { o.Engine = stuckEngine{v.e} })
	rep := v.wait("maxdel", 1, 20*time.Second)
	r := rep.Databases[0]
	if r.Outcome != "failed" || r.Attempt != 3 || !r.Retryable || r.Error == nil || !strings.Contains(*r.Error, "locked") {
		t.Fatalf("final result %+v", r)
	}
	if all := fleettest.All(t, v.js, "maxdel"); len(all) != 1 {
		t.Fatalf("%d results: only the final one is published", len(all))
	}
	fleettest.Eventually(t, 10*time.Second, "the job removed from the stream", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	if w.w.Metrics.Jobs("retry") != 2 || w.w.Metrics.Jobs("failed") != 1 {
		t.Fatalf("metrics retry %d failed %d", w.w.Metrics.Jobs("retry"), w.w.Metrics.Jobs("failed"))
	}
	if rep.OK() {
		t.Fatal("report ok with a failed DB")
	}
}

// stuckEngine fails every migration of a DB whose path contains "stuck"
// with a transient error: the DB held locked past the busy timeout.
type stuckEngine struct{ *engine.Engine }

func (s stuckEngine) Migrate(ctx context.Context, path string, o engine.MigrateOptions) (*engine.Result, error) {
	if strings.Contains(path, "stuck") {
		return nil, &engine.Error{Path: path, Kind: engine.ErrLocked, Detail: "another connection held the write lock past the busy timeout (test)"}
	}
	return s.Engine.Migrate(ctx, path, o)
}

// A migration that fails deterministically (its SQL) is attempted once:
// one result at attempt 1, retryable false, the job removed, and at most
// one backup of the DB.
func TestDeterministicFailureOnce(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Breakable(t, v.e, v.path("bad/app.db"))
	v.produce("poison", nil)
	w := v.worker("w", 1, func(o *Options, _ *nats.Conn) { o.NoBackup = false })
	rep := v.wait("poison", 1, 20*time.Second)
	r := rep.Databases[0]
	if r.Outcome != "failed" || r.Attempt != 1 || r.Retryable || r.Error == nil || !strings.Contains(*r.Error, "notes") {
		t.Fatalf("final result %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "the job removed from the stream", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	if all := fleettest.All(t, v.js, "poison"); len(all) != 1 {
		t.Fatalf("%d results", len(all))
	}
	if w.w.Metrics.Jobs("retry") != 0 {
		t.Fatalf("%d retries of a deterministic failure", w.w.Metrics.Jobs("retry"))
	}
	baks, _ := filepath.Glob(v.path("bad/app.db") + ".*.bak")
	if len(baks) > 1 {
		t.Fatalf("%d backups: %v", len(baks), baks)
	}
}

func TestRefusalTerminatedAtOnce(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Unmanaged(t, v.path("legacy/app.db"))
	v.produce("refuse", nil)
	v.worker("w", 1, nil)
	rep := v.wait("refuse", 1, 20*time.Second)
	r := rep.Databases[0]
	if r.Outcome != "unmanaged" || r.Attempt != 1 || r.Error == nil || r.From != nil {
		t.Fatalf("result %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "the job removed from the stream", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	if all := fleettest.All(t, v.js, "refuse"); len(all) != 1 {
		t.Fatalf("%d results: refusals are not retried", len(all))
	}
}

// Every delivery times out (workers die on each attempt): after max deliver
// the server gives up and a live worker publishes the final failed result
// from the advisory and removes the job.
func TestAbandonedJobReaped(t *testing.T) {
	t.Parallel()
	testAbandonedJob(t, fleettest.StartEmbedded(t, "", 0).URL)
}

// abandon publishes run runID for one tenant and lets every attempt of its
// job die (the worker loses NATS after migrating, max deliver 2), then
// starts a survivor that hears the max-deliveries advisory; it returns the
// run's report.
func abandon(t *testing.T, v *env, runID string, tweak func(*producer.Options)) *fleet.Report {
	t.Helper()
	v.set.AckWait = time.Second
	v.set.MaxDeliver = 2
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	v.produce(runID, tweak)
	for range 2 {
		died := make(chan struct{})
		v.worker("dies", 1, func(o *Options, nc *nats.Conn) {
			o.afterMigrate = func(context.Context, fleet.Job, int) { nc.Close(); close(died) }
		})
		<-died
	}
	v.worker("survivor", 1, nil) // listens for the advisory
	return v.wait(runID, 1, 20*time.Second)
}

func testAbandonedJob(t *testing.T, url string) {
	v := newEnv(t, url)
	rep := abandon(t, v, "abandon", nil)
	r := rep.Databases[0]
	if r.Outcome != "failed" || r.Attempt != 2 || r.Error == nil {
		t.Fatalf("result %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "the job removed", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
}

// SIGTERM-style stop: no new jobs are taken, the in-flight job finishes,
// publishes and acks, Run returns nil.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 5, nil)
	v.produce("graceful", nil)
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	w := v.worker("w", 1, func(o *Options, nc *nats.Conn) {
		o.afterMigrate = func(context.Context, fleet.Job, int) {
			once.Do(func() { close(started); <-release })
		}
	})
	<-started
	stopped := make(chan struct{})
	go func() { w.stop(); close(stopped) }()
	// Run must not return while the job is in flight.
	select {
	case <-stopped:
		t.Fatal("worker stopped with a job in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	rep := v.wait("graceful", 1, 10*time.Second)
	if len(rep.Databases) != 1 || rep.Databases[0].Outcome != "migrated" {
		t.Fatalf("results %+v", rep.Databases)
	}
	fleettest.Eventually(t, 10*time.Second, "4 jobs left", func() bool { return fleettest.JobsLeft(t, v.js) == 4 })
	if w.w.Ready() {
		t.Fatal("ready after stop")
	}
}

// The NATS server restarts mid-run (same store): no job is lost, every
// tenant reaches head.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	port := fleettest.FreePort(t)
	srv := fleettest.StartEmbedded(t, store, port)
	v := newEnv(t, srv.URL)
	fleettest.Fleet(t, v.e, v.root, 40, nil)
	v.produce("restart", nil)
	var mu sync.Mutex
	handled := 0
	gate := make(chan struct{})
	var w1nc *nats.Conn
	v.worker("w1", 2, func(o *Options, nc *nats.Conn) {
		w1nc = nc
		o.afterMigrate = func(ctx context.Context, _ fleet.Job, _ int) {
			mu.Lock()
			handled++
			n := handled
			mu.Unlock()
			if n > 10 {
				<-gate // hold in-flight jobs across the restart
			}
		}
	})
	fleettest.Eventually(t, 20*time.Second, "10 jobs handled", func() bool { mu.Lock(); defer mu.Unlock(); return handled >= 12 })
	srv.Stop()
	srv2 := fleettest.StartEmbedded(t, store, port)
	close(gate)
	_ = srv2
	v.worker("w2", 2, nil)
	rep := v.wait("restart", 40, 45*time.Second)
	if !rep.OK() {
		t.Fatalf("after restart: %+v", rep.Failed())
	}
	for _, d := range rep.Databases {
		if h := fleettest.History(t, d.Path); !reflect.DeepEqual(h, []int64{1, 2, 3}) {
			t.Fatalf("%s history %v", d.Tenant, h)
		}
	}
	fleettest.Eventually(t, 20*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	if w1nc.Stats().Reconnects == 0 {
		t.Fatal("the worker never reconnected: the server did not restart under it")
	}
}

func TestMetricsEndpoints(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 3, nil)
	v.produce("metrics", nil)
	w := v.worker("w", 2, nil)
	v.wait("metrics", 3, 20*time.Second)
	srv := httptest.NewServer(w.w.Handler())
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatal("healthz", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatal("readyz", code)
	}
	fleettest.Eventually(t, 5*time.Second, "metrics", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `shoal_worker_jobs_total{outcome="migrated"} 3`)
	})
	_, body := get("/metrics")
	for _, want := range []string{"# TYPE shoal_worker_job_duration_seconds histogram", `shoal_worker_job_duration_seconds_bucket{le="+Inf"} 3`,
		"shoal_worker_job_duration_seconds_count 3", "shoal_worker_jobs_in_flight 0", "shoal_worker_ready 1"} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	w.stop()
	if code, _ := get("/readyz"); code != 503 {
		t.Fatal("readyz after stop", code)
	}
}

// blockingEngine's migrations run until their context is cancelled.
type blockingEngine struct{ started chan struct{} }

func (b *blockingEngine) Head() int64 { return fleettest.Head }
func (b *blockingEngine) Migrate(ctx context.Context, _ string, _ engine.MigrateOptions) (*engine.Result, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// When in-flight jobs outlast the shutdown timeout they are cancelled and
// given back (nak'd) at once, with no result: another worker takes them.
func TestShutdownDeadlineNaks(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	v.set.AckWait = 30 * time.Second // redelivery must come from the nak, not the ack wait
	v.produce("deadline", nil)
	be := &blockingEngine{started: make(chan struct{}, 1)}
	w := v.worker("slow", 1, func(o *Options, _ *nats.Conn) {
		o.Engine = be
		o.ShutdownTimeout = 100 * time.Millisecond
	})
	<-be.started
	w.stop()
	if n := w.w.Metrics.Jobs("cancelled"); n != 1 {
		t.Fatalf("cancelled jobs: %d", n)
	}
	v.worker("next", 1, nil)
	rep := v.wait("deadline", 1, 10*time.Second)
	if r := rep.Databases[0]; r.Outcome != "migrated" || r.Attempt != 2 || r.Worker != "next" {
		t.Fatalf("result %+v", r)
	}
}

// Publishing the result takes longer than the ack wait (the results stream
// is missing for three ack waits): heartbeats go on until the job is acked,
// so it is not redelivered and handled a second time.
func TestHeartbeatsUntilAcked(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	v.set.AckWait = time.Second
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	v.produce("slowpub", nil)
	var mu sync.Mutex
	var attempts []int
	restored := make(chan struct{})
	v.worker("w", 2, func(o *Options, _ *nats.Conn) {
		o.afterMigrate = func(_ context.Context, _ fleet.Job, attempt int) {
			mu.Lock()
			attempts = append(attempts, attempt)
			first := len(attempts) == 1
			mu.Unlock()
			if !first {
				return
			}
			if err := v.js.DeleteStream(context.Background(), fleet.DefaultResultsStream); err != nil {
				t.Error(err)
			}
			time.AfterFunc(3*v.set.AckWait, func() {
				defer close(restored)
				if err := fleet.ProvisionStreams(context.Background(), v.js, v.set); err != nil {
					t.Error(err)
				}
			})
		}
	})
	<-restored
	rep := v.wait("slowpub", 1, 20*time.Second)
	if r := rep.Databases[0]; r.Outcome != "migrated" || r.Attempt != 1 {
		t.Fatalf("result %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "empty work queue", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(attempts, []int{1}) {
		t.Fatalf("attempts %v: the job was redelivered while its result was being published", attempts)
	}
}

// The consumers are deleted and the worker cannot provision them again
// (another consumer overlaps them on the work queue); once someone else
// (`shoal nats setup`) provisions them, the worker is ready again and works.
func TestReadyAgainAfterConsumersRestored(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	ctx := context.Background()
	if _, _, err := fleet.Provision(ctx, v.js, v.set, fleet.DefaultNode); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	w := v.worker("w", 1, func(o *Options, _ *nats.Conn) { o.Logger = zap.New(core) })
	fleettest.Eventually(t, 5*time.Second, "ready", w.w.Ready)
	// Delete the consumers and block their re-creation with a consumer
	// whose filter overlaps theirs (a work queue refuses overlaps); retry
	// when the worker re-created them first.
	fleettest.Eventually(t, 10*time.Second, "a blocking consumer", func() bool {
		for _, high := range []bool{true, false} {
			_ = v.js.DeleteConsumer(ctx, fleet.DefaultJobsStream, v.set.ConsumerName(fleet.DefaultNode, high))
		}
		_, err := v.js.CreateConsumer(ctx, fleet.DefaultJobsStream, jetstream.ConsumerConfig{
			Durable: "blocker", FilterSubject: "shoal.jobs.>", AckPolicy: jetstream.AckExplicitPolicy})
		return err == nil
	})
	fleettest.Eventually(t, 10*time.Second, "a failed provisioning", func() bool {
		for _, e := range logs.All() {
			if err, ok := e.ContextMap()["error"].(string); ok && strings.Contains(err, "not unique") {
				return true
			}
		}
		return false
	})
	if w.w.Ready() {
		t.Fatal("ready without consumers")
	}
	if err := v.js.DeleteConsumer(ctx, fleet.DefaultJobsStream, "blocker"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fleet.ProvisionConsumers(ctx, v.js, v.set, fleet.DefaultNode); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 10*time.Second, "ready again", w.w.Ready)
	fleettest.Fleet(t, v.e, v.root, 2, nil)
	v.produce("restored", nil)
	if rep := v.wait("restored", 2, 20*time.Second); !rep.OK() {
		t.Fatalf("%+v", rep.Failed())
	}
}

// Another worker (or `shoal nats setup`) lowered max deliver after this
// worker provisioned: the worker still knows the last attempt when it fails,
// so the final result carries the migration's error (not the reaper's
// "gave up").
func TestMaxDeliverLoweredByAnother(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	if err := os.Rename(filepath.Join(v.root, "t-000"), filepath.Join(v.root, "stuck")); err != nil {
		t.Fatal(err)
	}
	stuck := func(o *Options, _ *nats.Conn) { o.Engine = stuckEngine{v.e} }
	v.worker("w", 1, stuck) // provisions max deliver 3
	v.set.MaxDeliver = 2    // the last one to provision wins
	v.produce("lowered", nil)
	rep := v.wait("lowered", 1, 20*time.Second)
	if r := rep.Databases[0]; r.Outcome != "failed" || r.Attempt != 2 || r.Error == nil || !strings.Contains(*r.Error, "locked") {
		t.Fatalf("final result %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "the job removed from the stream", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	if all := fleettest.All(t, v.js, "lowered"); len(all) != 1 {
		t.Fatalf("%d results", len(all))
	}
}

// A job without a tenant id (published by hand) is reported and logged under
// its path.
func TestJobWithoutTenantLogsPath(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 1, nil)
	if _, _, err := fleet.Provision(context.Background(), v.js, v.set, fleet.DefaultNode); err != nil {
		t.Fatal(err)
	}
	path := v.path("t-000/app.db")
	data := `{"run_id":"notenant","path":` + strconv.Quote(path) + `,"target":3}`
	if _, err := v.js.Publish(context.Background(), "shoal.jobs.default", []byte(data)); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	v.worker("w", 1, func(o *Options, _ *nats.Conn) { o.Logger = zap.New(core) })
	rep := v.wait("notenant", 1, 20*time.Second)
	if r := rep.Databases[0]; r.Tenant != path || r.Outcome != "migrated" {
		t.Fatalf("result %+v", r)
	}
	fleettest.Eventually(t, 10*time.Second, "the job's log line", func() bool { return logs.FilterMessage("job done").Len() == 1 })
	if got := logs.FilterMessage("job done").All()[0].ContextMap()["tenant"]; got != path {
		t.Fatalf("job logged with tenant %q, want %q", got, path)
	}
}

// A tenant held locked past the busy timeout fails transiently: the job is
// retried and ends migrated once the lock is released (released when the
// first attempt is over, seen through the afterMigrate hook).
func TestTransientFailureRetried(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 1, func(int) int64 { return 1 })
	path := v.path("t-000/app.db")
	e, err := engine.New(engine.Options{Dir: fleettest.Migrations(), DirName: "test-migrations", BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
		})
	}
	defer release()
	v.produce("transient", nil)
	v.worker("w", 1, func(o *Options, _ *nats.Conn) {
		o.Engine = e
		o.NoBackup = false
		o.afterMigrate = func(_ context.Context, _ fleet.Job, attempt int) {
			if attempt == 1 {
				release()
			}
		}
	})
	rep := v.wait("transient", 1, 20*time.Second)
	if r := rep.Databases[0]; r.Outcome != "migrated" || r.Attempt != 2 || r.Retryable || r.Error != nil {
		t.Fatalf("result %+v", r)
	}
	if h := fleettest.History(t, path); !reflect.DeepEqual(h, []int64{1, 2, 3}) {
		t.Fatalf("history %v", h)
	}
	// One backup per tenant per run: the retry reused the first attempt's.
	if baks, _ := filepath.Glob(path + ".*.bak"); len(baks) != 1 || rep.Databases[0].Backup == nil || *rep.Databases[0].Backup != baks[0] {
		t.Fatalf("backups %v, result's %v", baks, rep.Databases[0].Backup)
	}
}

// A run's halt lives in the results stream: a worker started after it
// (another host, or a restart) skips every queued job of that run — result
// skipped, job removed, DB untouched — and still migrates other runs.
func TestHaltedRunSkipped(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	tenants := fleettest.Fleet(t, v.e, v.root, 4, func(int) int64 { return 1 })
	v.produce("halted", func(o *producer.Options) { o.MaxFailures = 2 })
	if err := fleet.PublishHalt(context.Background(), v.js, v.set.Names, fleet.Halt{RunID: "halted", Reason: "2 tenants failed (--max-failures 2)", Failures: 2}); err != nil {
		t.Fatal(err)
	}
	v.worker("late", 2, nil)
	rep := v.wait("halted", 4, 20*time.Second)
	for _, r := range rep.Databases {
		if r.Outcome != fleet.OutcomeSkipped || r.Error == nil || !strings.Contains(*r.Error, "--max-failures 2") || r.Retryable {
			t.Fatalf("result %+v", r)
		}
	}
	for _, tn := range tenants {
		if h := fleettest.History(t, v.path(tn)); !reflect.DeepEqual(h, []int64{1}) {
			t.Fatalf("%s migrated by a halted run: %v", tn, h)
		}
	}
	fleettest.Eventually(t, 10*time.Second, "the jobs removed", func() bool { return fleettest.JobsLeft(t, v.js) == 0 })
	// Another run (no halt) goes through.
	v.produce("next", func(o *producer.Options) { o.MaxFailures = 2 })
	if rep := v.wait("next", 4, 20*time.Second); !rep.OK() {
		t.Fatalf("next run: %+v", rep.Failed())
	}
}

// TestSweepDoesNotBlockPulls: the sweep's requests may wait a long time for
// a cluster that lost a leader (nats-server 2.9 kept one waiting for a
// minute in the cluster drill); the worker pulls and migrates meanwhile.
// Run in the pull loop, a sweep that never returned stalled every job.
func TestSweepDoesNotBlockPulls(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	started := make(chan struct{})
	var once sync.Once
	v.worker("w", 2, func(o *Options, _ *nats.Conn) {
		o.SweepEvery = time.Millisecond
		o.sweep = func(ctx context.Context) (int, error) {
			once.Do(func() { close(started) })
			<-ctx.Done() // a sweep that waits until the worker stops
			return 0, ctx.Err()
		}
	})
	// The first idle pull starts the sweep; the jobs come after it.
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker never swept")
	}
	fleettest.Fleet(t, v.e, v.root, 8, nil)
	v.produce("sweep-beside", nil)
	rep := v.wait("sweep-beside", 8, 30*time.Second)
	if !rep.OK() {
		t.Fatalf("report %+v", rep.Summary)
	}
}

// TestAbandonedJobCountsTowardHalt: a job whose every attempt timed out
// (the workers died) ends `failed` through the reaper, and that failure
// counts toward its run's --max-failures like a failed migration: the run
// halts. Before, only failures a worker reported itself were counted.
func TestAbandonedJobCountsTowardHalt(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	rep := abandon(t, v, "abandon-halt", func(o *producer.Options) { o.MaxFailures = 1 })
	if r := rep.Databases[0]; r.Outcome != "failed" || r.Attempt != 2 {
		t.Fatalf("result %+v", r)
	}
	st, err := v.js.Stream(context.Background(), fleet.DefaultResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	reason, n, err := fleet.HaltState(context.Background(), st, v.set.Names, "abandon-halt", 1)
	if err != nil || n != 1 || reason == "" {
		t.Fatalf("halt state: reason %q, %d failures, %v", reason, n, err)
	}
}
