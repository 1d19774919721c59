// Package worker pulls migration jobs from NATS JetStream and migrates the
// tenant DBs, N at a time: back up (when something is pending), migrate,
// publish the result, then ack.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/internal/retry"
	"github.com/shoal-dev/shoal/tenants"
	"go.uber.org/zap"
)

// Verifier checks a DB's schema against its version (schema.Verifier wraps an engine with it).
type Verifier interface {
	Drift(ctx context.Context, path string) ([]engine.SchemaDiff, error)
}

// Migrator is the part of the engine a worker uses.
type Migrator interface {
	Head() int64
	Migrate(ctx context.Context, path string, o engine.MigrateOptions) (*engine.Result, error)
}

// Adopter is a Migrator that can take over another tool's history on
// first contact (jobs with adopt set; *engine.Engine is one).
type Adopter interface {
	MigrateAdopting(ctx context.Context, path string, mo engine.MigrateOptions, eo engine.EnrollOptions) (*engine.Result, *engine.Enrolled, error)
}

// Options configure a worker.
type Options struct {
	Engine Migrator
	// Root is the tenant root (required): a job's tenant is resolved
	// beneath it (tenants.ResolveTenant) and a job whose DB is not a regular
	// file beneath it, reached through no symlink, is rejected.
	Root string
	// Node selects the consumers (jobs on shoal.jobs.<node>[.high]).
	Node string
	// Concurrency is how many DBs are migrated at once (default 4).
	Concurrency int
	// Name identifies the worker in results (default hostname:pid).
	Name string
	// Settings: names, ack wait, max deliver (provisioned at start).
	Settings fleet.Settings
	// Backoff is the delay before the second attempt of a failed job; it
	// doubles with each attempt, capped at MaxBackoff (defaults 5s, 5m).
	Backoff, MaxBackoff time.Duration
	// Backup options for engine.Migrate (a backup is taken only when
	// something is pending). NoBackup disables backups.
	Backup   engine.BackupOptions
	NoBackup bool
	// Verify compares each DB's schema, after migrating it, with what its
	// version should have; a difference is the outcome "drifted".
	Verify bool
	// ShutdownTimeout bounds how long in-flight jobs may run after the
	// worker is told to stop; then they are cancelled and nak'd (default 30s).
	ShutdownTimeout time.Duration
	// PollWait is how long one pull for bulk jobs waits when the queue is
	// empty (default 1s); high-priority jobs are checked between pulls.
	PollWait time.Duration
	// SweepEvery is how often an idle worker looks for job messages its
	// consumers already acked but the stream still holds (Sweep; default
	// 30s).
	SweepEvery time.Duration
	sweep      func(context.Context) (int, error) // Sweep; a test may stand in for it
	Logger     *zap.Logger

	// afterMigrate is a test hook run between the migration and the
	// publication of its result.
	afterMigrate func(ctx context.Context, job fleet.Job, attempt int)
	// beforeMigrate is a test hook run after the job's DB was resolved,
	// before the engine opens it.
	beforeMigrate func(path string)
}

// Worker is a running worker. Create with New, run with Run.
type Worker struct {
	o       Options
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *zap.Logger
	high    jetstream.Consumer
	bulk    jetstream.Consumer
	maxDel  atomic.Int64 // consumer's MaxDeliver
	ackWait atomic.Int64 // consumer's AckWait (ns)
	ready   atomic.Bool
	Metrics *Metrics

	resMu     sync.Mutex
	resStream jetstream.Stream // results stream, for halts (cached)
}

// New prepares a worker on an open connection.
func New(nc *nats.Conn, js jetstream.JetStream, o Options) (*Worker, error) {
	if o.Engine == nil {
		return nil, errors.New("worker: no engine")
	}
	if o.Root == "" {
		return nil, errors.New("worker: no tenant root (--root or SHOAL_ROOT): jobs name their tenant relative to it")
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("worker: tenant root %s: %w", o.Root, err)
	}
	if st, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("worker: tenant root %s: %w", o.Root, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("worker: tenant root %s is not a directory", o.Root)
	}
	o.Root = root
	if o.Node == "" {
		o.Node = fleet.DefaultNode
	}
	if err := fleet.ValidName("node", o.Node); err != nil {
		return nil, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.Backoff <= 0 {
		o.Backoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.PollWait <= 0 {
		o.PollWait = time.Second
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = 30 * time.Second
	}
	if o.Settings.AckWait <= 0 {
		o.Settings.AckWait = fleet.DefaultAckWait
	}
	if o.Settings.MaxDeliver <= 0 {
		o.Settings.MaxDeliver = fleet.DefaultMaxDeliver
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Worker{o: o, nc: nc, js: js, log: log.With(zap.String("worker", o.Name), zap.String("node", o.Node)),
		Metrics: NewMetrics()}, nil
}

// Ready reports whether the worker is connected and its consumers exist.
func (w *Worker) Ready() bool { return w.ready.Load() && w.nc.IsConnected() }

// pending reads the jobs waiting in this worker's consumers (metrics).
func (w *Worker) pending(ctx context.Context) []Pending {
	stream := w.o.Settings.JobsStream
	if stream == "" {
		stream = fleet.DefaultJobsStream
	}
	var out []Pending
	for _, high := range []bool{false, true} {
		c, err := w.js.Consumer(ctx, stream, w.o.Settings.ConsumerName(w.o.Node, high))
		if err != nil {
			continue
		}
		info, err := c.Info(ctx)
		if err != nil {
			continue
		}
		prio := fleet.PriorityNormal
		if high {
			prio = fleet.PriorityHigh
		}
		out = append(out, Pending{Node: w.o.Node, Priority: prio, Jobs: info.NumPending, AckPending: uint64(info.NumAckPending)})
	}
	return out
}

// Provision creates the streams and the node's consumers (idempotent).
func (w *Worker) Provision(ctx context.Context) error {
	high, bulk, err := fleet.Provision(ctx, w.js, w.o.Settings, w.o.Node)
	if err != nil {
		return err
	}
	w.high, w.bulk = high, bulk
	maxDel, ackWait := bulk.CachedInfo().Config.MaxDeliver, bulk.CachedInfo().Config.AckWait
	if maxDel <= 0 {
		maxDel = w.o.Settings.MaxDeliver
	}
	if ackWait <= 0 {
		ackWait = w.o.Settings.AckWait
	}
	w.maxDel.Store(int64(maxDel))
	w.ackWait.Store(int64(ackWait))
	w.ready.Store(true)
	return nil
}

// Run pulls and handles jobs until ctx is cancelled; then it stops pulling,
// lets in-flight jobs finish (for at most ShutdownTimeout, after which they
// are cancelled and nak'd for redelivery) and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	if w.bulk == nil {
		if err := w.Provision(ctx); err != nil {
			return err
		}
	}
	stopReaper := w.startReaper()
	defer stopReaper()

	// jobCtx outlives ctx by at most ShutdownTimeout.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.NewTimer(w.o.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelJobs()
		case <-jobCtx.Done():
		}
	})
	defer stopAfter()

	w.log.Info("worker started", zap.Int("concurrency", w.o.Concurrency), zap.Duration("ack_wait", time.Duration(w.ackWait.Load())),
		zap.Int64("max_deliver", w.maxDel.Load()))
	slots := make(chan struct{}, w.o.Concurrency)
	publishSlots := make(chan struct{}, w.o.Concurrency)
	var wg sync.WaitGroup
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	var lastSweep time.Time
	var sweeping atomic.Bool
	for ctx.Err() == nil {
		if !w.ready.Load() {
			// A consumer was deleted: provision both again before
			// pulling, until that works (even if someone else created
			// them meanwhile: then this also re-reads their settings).
			if err := w.Provision(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				d := backoff.Next()
				w.log.Warn("cannot provision the consumers, retrying", zap.Error(err), zap.Duration("in", d))
				retry.Sleep(ctx, d)
				continue
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := 1
	more:
		for free < w.o.Concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		dispatch := func(msg jetstream.Msg) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The DB slot is given back as soon as the migration is
				// over, so the next job is pulled and migrated while this
				// one's result is published and acked; at most
				// Concurrency jobs are in that phase at once.
				var once sync.Once
				release := func() { once.Do(func() { <-slots }) }
				defer release()
				publishing := false
				w.handle(jobCtx, msg, func() {
					publishSlots <- struct{}{}
					publishing = true
					release()
				})
				if publishing {
					<-publishSlots
				}
			}()
		}
		got, err := w.pull(w.high, free, 0, dispatch)
		if err == nil && got < free && ctx.Err() == nil {
			var n int
			n, err = w.pull(w.bulk, free-got, w.o.PollWait, dispatch)
			got += n
		}
		for range free - got {
			<-slots
		}
		if err == nil && got == 0 && time.Since(lastSweep) >= w.o.SweepEvery && ctx.Err() == nil && sweeping.CompareAndSwap(false, true) {
			// The sweep runs beside the pulls, never in their way: its
			// requests may wait for a cluster that is electing a leader,
			// and a worker that stopped pulling meanwhile would stall
			// the run (TestSweepDoesNotBlockPulls).
			lastSweep = time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer sweeping.Store(false)
				sweep := w.o.sweep
				if sweep == nil {
					sweep = w.Sweep
				}
				if n, serr := sweep(ctx); serr != nil {
					w.log.Debug("sweep failed", zap.Error(serr))
				} else if n > 0 {
					w.log.Warn("removed job messages already acked but still stored (left by a server crash)", zap.Int("count", n))
				}
			}()
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, nats.ErrNoResponders) {
				// Someone deleted the consumer (or the server lost its
				// state; a pull from a missing consumer gets no
				// responders): not ready until it is provisioned again,
				// at the top of the loop.
				w.ready.Store(false)
			}
			d := backoff.Next()
			w.log.Warn("pull failed, retrying", zap.Error(err), zap.Duration("in", d))
			retry.Sleep(ctx, d)
			continue
		}
		backoff.Reset()
	}
	w.log.Info("stopping: finishing in-flight jobs", zap.Duration("timeout", w.o.ShutdownTimeout))
	wg.Wait()
	w.ready.Store(false)
	w.log.Info("worker stopped")
	return nil
}

// pull fetches up to n messages (wait 0: only those available now) and
// dispatches each as it arrives.
func (w *Worker) pull(c jetstream.Consumer, n int, wait time.Duration, dispatch func(jetstream.Msg)) (int, error) {
	var batch jetstream.MessageBatch
	var err error
	if wait <= 0 {
		batch, err = c.FetchNoWait(n)
	} else {
		batch, err = c.Fetch(n, jetstream.FetchMaxWait(wait))
	}
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		dispatch(msg)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
		return got, err
	}
	return got, nil
}

// ErrTargetBeyondHead, TargetError and ErrTenantMoved are fleet's (the
// classification of failures, fleet.Retryable, knows them).
var (
	ErrTargetBeyondHead = fleet.ErrTargetBeyondHead
	ErrTenantMoved      = fleet.ErrTenantMoved
)

// TargetError is fleet.TargetError.
type TargetError = fleet.TargetError

// final reports whether err ends a job at once: retrying cannot help
// (fleet.Retryable decides).
func final(err error) bool { return !fleet.Retryable(err) }

// handle runs one job: validate it, resolve its DB beneath the root,
// migrate, publish the result, then ack (or nak with backoff, or term).
// migrated is called once the engine is done with the DB, before the result
// is published (not for jobs given back or retried).
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, migrated func()) {
	start := time.Now()
	attempt := 1
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
		seq = md.Sequence.Stream
		w.Metrics.observeQueue(start.Sub(md.Timestamp))
	}
	job, err := fleet.ParseJob(msg.Data())
	name := job.Tenant
	if name == "" {
		name = job.Path // a job published by hand with a path only
	}
	if name == "" {
		name = fmt.Sprintf("(job #%d)", seq) // a message that names no tenant at all
	}
	log := w.log.With(zap.String("run_id", job.RunID), zap.String("tenant", name), zap.Int("attempt", attempt))
	// In flight until the job is counted (its migration is over), or until
	// handle returns for a job given back.
	w.Metrics.inFlight.Add(1)
	var doneOnce sync.Once
	done := func() { doneOnce.Do(func() { w.Metrics.inFlight.Add(-1) }) }
	defer done()
	if attempt > 1 {
		w.Metrics.redeliveries.Add(1)
	}

	// Heartbeats keep the job ours while it runs longer than the ack wait,
	// until it is acked or terminated: publishing the result may itself
	// take longer than the ack wait (NATS restarting, results stream slow).
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go func() {
		every := time.Duration(w.ackWait.Load()) / 3
		if every <= 0 {
			every = 10 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-hbCtx.Done():
				return
			}
		}
	}()

	var res *engine.Result
	var resolved tenants.Resolved
	if err == nil && job.MaxFailures > 0 {
		// The run halts at max_failures: look before touching the DB.
		if reason := w.haltReason(ctx, job, log); reason != "" {
			w.skip(ctx, msg, job, name, seq, attempt, reason, start, log)
			return
		}
	}
	if err == nil {
		t0 := time.Now()
		res, resolved, err = w.run(ctx, job, log)
		w.Metrics.observeEngine(time.Since(t0))
		if ctx.Err() != nil && err != nil && !final(err) {
			// Shutting down past the deadline: the engine rolled back; give
			// the job back at once, with no result (the delivery still
			// counts towards max deliver).
			log.Warn("job cancelled by shutdown, giving it back", zap.Error(err))
			_ = msg.Nak()
			w.Metrics.observe("cancelled", time.Since(start))
			return
		}
		if w.o.afterMigrate != nil {
			w.o.afterMigrate(ctx, job, attempt)
		}
	}
	r := w.result(job, res, err, attempt, start)
	r.Tenant = name
	if resolved.Path != "" {
		r.Path = resolved.Path // the file this worker resolved (the job's path is the producer's view)
	}
	if err != nil && !final(err) && int64(attempt) < w.maxDeliver(ctx, msg) {
		stopHB()
		delay := w.backoff(attempt)
		log.Debug("migration failed, will retry", zap.Error(err), zap.Duration("retry_in", delay), zap.Int64("max_deliver", w.maxDel.Load()))
		_ = msg.NakWithDelay(delay)
		w.Metrics.observe("retry", time.Since(start))
		return
	}
	// The migration is done: report it even if shutdown's deadline passed.
	migrated()
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer pcancel()
	if job.MaxFailures > 0 && fleet.IsFailure(r.Outcome) {
		// Counted before the result is published and the next job taken,
		// so every job started after the limit is skipped.
		w.countFailure(pctx, job, name, log)
	}
	// Counted before its result is visible, so metrics never lag behind
	// results (a job whose result cannot be published now is counted again
	// when it is redelivered).
	done()
	w.Metrics.observe(r.Outcome, time.Since(start))
	if err := w.publish(pctx, r, seq); err != nil {
		if !errors.Is(err, errUnpublishable) {
			// Not acked: redelivered after the ack wait and handled again
			// (the engine makes the second run a no-op).
			log.Error("cannot publish result, leaving the job for redelivery", zap.Error(err))
			return
		}
		// Redelivery would only fail the same way: drop the job.
		log.Error("result cannot be published, terminating the job", zap.Error(err))
	}
	// Remove the job from the work queue, confirmed by the server (an ack
	// for a DB at head, a term for everything else), so that no job of a
	// finished run is left in the stream, even across a server restart.
	if serr := w.settle(pctx, msg, seq, fleet.AtHead(r.Outcome)); serr != nil {
		log.Warn("ack/term not confirmed; the job may be redelivered and handled again as a no-op", zap.Error(serr))
	}
	fields := []zap.Field{zap.String("outcome", r.Outcome), zap.Int64("duration_ms", r.DurationMs), zap.Int("applied", len(r.Applied))}
	if r.Error != nil {
		log.Warn("job done", append(fields, zap.String("error", *r.Error))...)
	} else {
		log.Info("job done", fields...)
	}
}

// results returns the results stream (cached).
func (w *Worker) results(ctx context.Context) (jetstream.Stream, error) {
	w.resMu.Lock()
	defer w.resMu.Unlock()
	if w.resStream != nil {
		return w.resStream, nil
	}
	name := w.o.Settings.ResultsStream
	if name == "" {
		name = fleet.DefaultResultsStream
	}
	st, err := w.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	w.resStream = st
	return st, nil
}

// haltReason says whether job's run has halted ("" if not). If that
// cannot be read, the job goes on (the producer stops publishing anyway).
func (w *Worker) haltReason(ctx context.Context, job fleet.Job, log *zap.Logger) string {
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := w.results(hctx)
	if err == nil {
		var reason string
		if reason, _, err = fleet.HaltState(hctx, st, w.o.Settings.Names, job.RunID, job.MaxFailures); err == nil {
			return reason
		}
	}
	log.Warn("cannot read whether the run halted; migrating", zap.Error(err))
	return ""
}

// countFailure records a failed job of a run with max_failures and, when
// that reaches the limit, publishes the run's halt.
func (w *Worker) countFailure(ctx context.Context, job fleet.Job, tenant string, log *zap.Logger) {
	if err := fleet.RecordFailure(ctx, w.js, w.o.Settings.Names, job.RunID, job.JobID, tenant); err != nil {
		log.Warn("cannot count the failure towards --max-failures", zap.Error(err))
		return
	}
	st, err := w.results(ctx)
	if err != nil {
		return
	}
	_, n, err := fleet.HaltState(ctx, st, w.o.Settings.Names, job.RunID, 0)
	if err != nil || int64(n) < job.MaxFailures {
		return
	}
	reason := fleet.MaxFailuresReason(n, job.MaxFailures)
	if err := fleet.PublishHalt(ctx, w.js, w.o.Settings.Names, fleet.Halt{RunID: job.RunID, Reason: reason, Failures: n}); err != nil {
		log.Warn("cannot publish the run's halt", zap.Error(err))
		return
	}
	log.Warn("run halted: no more of its jobs are migrated", zap.String("reason", reason))
}

// skip ends a job of a halted run: result `skipped`, job terminated, DB
// untouched.
func (w *Worker) skip(ctx context.Context, msg jetstream.Msg, job fleet.Job, name string, seq uint64, attempt int, reason string, start time.Time, log *zap.Logger) {
	why := "not migrated: the run halted: " + reason
	r := fleet.Result{RunID: job.RunID, JobID: job.JobID, Tenant: name, Path: job.Path, Outcome: fleet.OutcomeSkipped,
		Applied: []engine.Applied{}, Error: &why, Attempt: attempt, Worker: w.o.Name, At: time.Now().UTC(),
		DurationMs: time.Since(start).Milliseconds()}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := w.publish(pctx, r, seq); err != nil && !errors.Is(err, errUnpublishable) {
		log.Error("cannot publish result, leaving the job for redelivery", zap.Error(err))
		return
	}
	if err := w.settle(pctx, msg, seq, false); err != nil {
		log.Warn("term not confirmed; the job may be redelivered and skipped again", zap.Error(err))
	}
	w.Metrics.observe(fleet.OutcomeSkipped, time.Since(start))
	log.Info("job done", zap.String("outcome", fleet.OutcomeSkipped), zap.String("reason", reason))
}

// run resolves the job's DB beneath the root and migrates it. A rejected
// or missing tenant never reaches the engine.
func (w *Worker) run(ctx context.Context, job fleet.Job, log *zap.Logger) (*engine.Result, tenants.Resolved, error) {
	rel := job.Tenant
	if rel == "" {
		var err error
		if rel, err = tenants.TenantFromPath(w.o.Root, job.Path); err != nil {
			return nil, tenants.Resolved{}, err
		}
	}
	before, err := tenants.ResolveTenant(w.o.Root, rel)
	if err != nil {
		return nil, tenants.Resolved{}, err
	}
	if head := w.o.Engine.Head(); job.Target > head {
		return nil, before, &TargetError{Target: job.Target, Head: head}
	}
	if w.o.beforeMigrate != nil {
		w.o.beforeMigrate(before.Path)
	}
	log.Debug("migrating", zap.String("path", before.Path))
	res, err := w.migrate(ctx, job, before.Path)
	// The engine opened the DB by its path: check that the path still
	// leads, through no symlink, to the file resolved before.
	after, aerr := tenants.ResolveTenant(w.o.Root, rel)
	if aerr != nil || !after.Same(before) {
		detail := "it no longer resolves to the same regular file"
		if aerr != nil {
			detail = aerr.Error()
		}
		merr := fmt.Errorf("%w: %s: %s; the run may have written elsewhere, check the tenant's directory for a planted symlink (migration: %v)",
			ErrTenantMoved, before.Path, detail, err)
		return res, before, merr
	}
	return res, before, err
}

func (w *Worker) migrate(ctx context.Context, job fleet.Job, path string) (res *engine.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("worker panic while migrating %s: %v", path, p)
		}
	}()
	mo := engine.MigrateOptions{MustExist: true}
	head := w.o.Engine.Head()
	if job.Target > 0 && job.Target < head {
		mo.To = job.Target
	}
	if !w.o.NoBackup {
		b := w.o.Backup
		// One backup per tenant per run: a retry of this job reuses the
		// backup its first attempt took while the DB has not changed.
		key := job.JobID
		if key == "" {
			key = job.Tenant + "\x00" + job.Path
		}
		b.ReuseKey = job.RunID + "\x00" + key
		mo.Backup = &b
	}
	if a, ok := w.o.Engine.(Adopter); ok && job.Adopt {
		res, _, err = a.MigrateAdopting(ctx, path, mo, engine.EnrollOptions{})
	} else {
		res, err = w.o.Engine.Migrate(ctx, path, mo)
	}
	if err != nil || !w.o.Verify {
		return res, err
	}
	v, ok := w.o.Engine.(Verifier)
	if !ok {
		return res, errors.New("worker: --verify needs an engine that can check drift")
	}
	diffs, err := v.Drift(ctx, path)
	if err != nil {
		return res, err
	}
	if len(diffs) > 0 {
		return res, &engine.Error{Path: path, Kind: engine.ErrDrifted, Detail: engine.DescribeDiffs(diffs),
			Hint: "run `shoal diff --db " + path + "` and repair the DB or restore it from a backup"}
	}
	return res, nil
}

// settle removes a finished job from the work queue and waits for the
// server to confirm it: DoubleAck for a DB at head, a +TERM request for
// the rest (a term is an ack that also says "not redelivered"). Retried
// through reconnects until ctx ends; a job the stream no longer holds is
// settled.
func (w *Worker) settle(ctx context.Context, msg jetstream.Msg, seq uint64, ack bool) error {
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var err error
		if ack {
			err = msg.DoubleAck(actx)
			if errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				err = nil
			}
		} else {
			_, err = w.nc.RequestWithContext(actx, msg.Reply(), []byte("+TERM"))
		}
		cancel()
		if err == nil {
			return nil
		}
		if seq > 0 && w.gone(ctx, msg, seq) {
			return nil
		}
		if ctx.Err() != nil || w.nc.IsClosed() {
			return err
		}
		if backoff.Wait(ctx) != nil {
			return err
		}
	}
}

// gone reports whether the jobs stream no longer holds message seq.
func (w *Worker) gone(ctx context.Context, msg jetstream.Msg, seq uint64) bool {
	md, err := msg.Metadata()
	if err != nil {
		return false
	}
	gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := w.js.Stream(gctx, md.Stream)
	if err != nil {
		return false
	}
	_, err = st.GetMsg(gctx, seq)
	return errors.Is(err, jetstream.ErrMsgNotFound)
}

// Sweep removes the job messages of this node that its consumers are done
// with (at or below their ack floor) but the jobs stream still holds. Two
// cases: after a crash, nats-server 2.9 may restore a consumer's ack floor
// without the deletes of the work-queue messages it acked (their results
// exist: the message is deleted); and a job that reached max deliver while
// no worker heard the server's advisory (no result: the final `failed`
// result is published first, as the reaper does). Idle workers call it
// every SweepEvery; it returns how many messages it removed.
func (w *Worker) Sweep(ctx context.Context) (int, error) {
	removed := 0
	for _, c := range []jetstream.Consumer{w.high, w.bulk} {
		if c == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		n, err := w.sweepConsumer(sctx, c)
		cancel()
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// maxSweep bounds the messages one sweep handles.
const maxSweep = 1000

func (w *Worker) sweepConsumer(ctx context.Context, c jetstream.Consumer) (int, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	floor, subj := info.AckFloor.Stream, info.Config.FilterSubject
	if floor == 0 || subj == "" {
		return 0, nil
	}
	st, err := w.js.Stream(ctx, info.Stream)
	if err != nil {
		return 0, err
	}
	first := st.CachedInfo().State.FirstSeq
	if first == 0 || first > floor {
		return 0, nil
	}
	type leftover struct {
		seq uint64
		job fleet.Job
		bad error
	}
	var left []leftover
	for seq := first; seq <= floor && len(left) < maxSweep; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, err
		}
		if m.Sequence > floor {
			break
		}
		job, perr := fleet.ParseJob(m.Data)
		left = append(left, leftover{m.Sequence, job, perr})
		seq = m.Sequence + 1
	}
	if len(left) == 0 {
		return 0, nil
	}
	// Which tenants of those runs have a result already.
	reported := map[string]*fleet.Tracker{}
	for _, l := range left {
		if l.bad != nil || reported[l.job.RunID] != nil {
			continue
		}
		tr := fleet.NewTracker(l.job.RunID, time.Time{})
		if err := fleet.Follow(ctx, w.js, w.o.Settings.Names, l.job.RunID, tr, fleet.FollowOptions{NoManifest: true}); err != nil {
			return 0, err
		}
		reported[l.job.RunID] = tr
	}
	removed := 0
	for _, l := range left {
		tenant := l.job.Tenant
		if tenant == "" {
			tenant = l.job.Path
		}
		if l.bad != nil || !hasResult(reported[l.job.RunID], tenant) {
			msg := "gave up: the job reached max deliver and no worker reported it (its last attempt timed out, or its result was lost in a server crash)"
			outcome := engine.OutcomeFailed
			if l.bad != nil {
				msg, outcome = l.bad.Error(), fleet.OutcomeRejected
			}
			r := fleet.Result{RunID: l.job.RunID, JobID: l.job.JobID, Tenant: tenant, Path: l.job.Path, Outcome: outcome,
				Applied: []engine.Applied{}, Error: &msg, Attempt: info.Config.MaxDeliver, Worker: w.o.Name, At: time.Now().UTC()}
			if l.bad == nil && l.job.MaxFailures > 0 {
				w.countFailure(ctx, l.job, tenant, w.log.With(zap.String("run_id", l.job.RunID), zap.String("tenant", tenant)))
			}
			if err := w.publish(ctx, r, l.seq); err != nil {
				return removed, err
			}
		}
		if err := st.DeleteMsg(ctx, l.seq); err == nil {
			removed++
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) && !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return removed, err
		}
	}
	return removed, nil
}

func hasResult(t *fleet.Tracker, tenant string) bool {
	if t == nil {
		return false
	}
	_, ok := t.Result(tenant)
	return ok
}

// maxDeliver is the max deliver of the consumer msg came from, as the server
// has it now: another worker or `shoal nats setup` may have changed it since
// this worker provisioned (the last one wins). Mistaking the last attempt
// for an earlier one would nak it: never redelivered, it would end with the
// reaper's "gave up" instead of its error. Falls back to the value seen at
// provisioning.
func (w *Worker) maxDeliver(ctx context.Context, msg jetstream.Msg) int64 {
	if md, err := msg.Metadata(); err == nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if c, err := w.js.Consumer(cctx, md.Stream, md.Consumer); err == nil && c.CachedInfo().Config.MaxDeliver > 0 {
			w.maxDel.Store(int64(c.CachedInfo().Config.MaxDeliver))
		}
	}
	return w.maxDel.Load()
}

func (w *Worker) result(job fleet.Job, res *engine.Result, err error, attempt int, start time.Time) fleet.Result {
	return fleet.NewResult(job, res, err, attempt, w.o.Name, time.Since(start))
}

func (w *Worker) backoff(attempt int) time.Duration {
	return retry.Delay(w.o.Backoff, w.o.MaxBackoff, attempt)
}

// errUnpublishable: the server refuses the result for good (too large
// even cut down): retrying or redelivering cannot help.
var errUnpublishable = errors.New("result cannot be published")

// publish stores the result on its run's subject (results of jobs whose run
// id is unusable on <results>._rejected), retrying through reconnects until
// ctx ends. The message id makes retries of the same attempt idempotent. A
// result the server refuses as too large is cut down (error text, applied
// list) and published at once; if even that is refused, errUnpublishable.
func (w *Worker) publish(ctx context.Context, r fleet.Result, seq uint64) error {
	runID := r.RunID
	if fleet.ValidRunID(runID) != nil {
		runID = fleet.RejectedRunID
	}
	id := fmt.Sprintf("%s:%s:%d:%d", runID, fleet.Shorten(r.Tenant, 512), seq, r.Attempt)
	subj := w.o.Settings.ResultSubject(runID)
	r = fleet.BoundResult(r, fleet.MaxResultErrorBytes)
	shrunk := false
	// 100ms doubling while below 2s: at most 3.2s.
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 3200 * time.Millisecond}
	for {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		msg := nats.NewMsg(subj)
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, id)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = w.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if errors.Is(err, nats.ErrMaxPayload) || errors.As(err, &apiErr) && apiErr.Code != 503 {
			if shrunk {
				return fmt.Errorf("%w: %v", errUnpublishable, err)
			}
			// Too large (or refused): publish a cut-down result now rather
			// than hold the job until the ack wait.
			shrunk = true
			r = fleet.BoundResult(r, 1024)
			if len(r.Applied) > 100 {
				r.Applied = r.Applied[len(r.Applied)-100:]
			}
			note := fmt.Sprintf("(result cut down: the server refused it: %v)", err)
			if r.Error == nil {
				r.Error = &note
			} else {
				e := *r.Error + " " + note
				r.Error = &e
			}
			continue
		}
		if ctx.Err() != nil || w.nc.IsClosed() {
			return fmt.Errorf("publish result: %w", err)
		}
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
	}
}

// startReaper handles jobs whose every delivery timed out (a worker died on
// the last attempt): the server then stops delivering them and sends a
// MAX_DELIVERIES advisory. One worker of the node (queue group) publishes
// the final `failed` result and removes the message.
func (w *Worker) startReaper() func() {
	stream := w.o.Settings.JobsStream
	if stream == "" {
		stream = fleet.DefaultJobsStream
	}
	var subs []*nats.Subscription
	for _, high := range []bool{false, true} {
		subj := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", stream, w.o.Settings.ConsumerName(w.o.Node, high))
		sub, err := w.nc.QueueSubscribe(subj, "shoal-reaper", w.reap)
		if err != nil {
			w.log.Warn("cannot watch max-deliveries advisories", zap.Error(err))
			continue
		}
		subs = append(subs, sub)
	}
	return func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
}

func (w *Worker) reap(m *nats.Msg) {
	var adv struct {
		Stream     string `json:"stream"`
		Consumer   string `json:"consumer"`
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries int    `json:"deliveries"`
	}
	if json.Unmarshal(m.Data, &adv) != nil || adv.StreamSeq == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := w.js.Stream(ctx, adv.Stream)
	if err != nil {
		return
	}
	raw, err := st.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return // already gone: acked or termed by a live worker
	}
	job, perr := fleet.ParseJob(raw.Data)
	msg := fmt.Sprintf("gave up after %d deliveries: every attempt timed out (worker died or exceeded the ack wait without heartbeats)", adv.Deliveries)
	outcome := engine.OutcomeFailed
	if perr != nil {
		msg, outcome = perr.Error(), fleet.OutcomeRejected
	}
	tenant := job.Tenant
	if tenant == "" {
		tenant = job.Path
	}
	r := fleet.Result{RunID: job.RunID, JobID: job.JobID, Tenant: tenant, Path: job.Path, Outcome: outcome,
		Applied: []engine.Applied{}, Error: &msg, Attempt: adv.Deliveries, Worker: w.o.Name, At: time.Now().UTC()}
	if perr == nil && job.MaxFailures > 0 {
		// A job that timed out on every attempt is a failure of its run
		// like any other (--max-failures).
		w.countFailure(ctx, job, tenant, w.log.With(zap.String("run_id", job.RunID), zap.String("tenant", tenant)))
	}
	if err := w.publish(ctx, r, adv.StreamSeq); err != nil {
		w.log.Error("cannot publish the final result of an abandoned job", zap.String("tenant", job.Tenant), zap.Error(err))
		return
	}
	_ = st.DeleteMsg(ctx, adv.StreamSeq)
	w.Metrics.observe(engine.OutcomeFailed, 0)
	w.log.Warn("job abandoned after max deliveries", zap.String("run_id", job.RunID), zap.String("tenant", job.Tenant), zap.Int("attempt", adv.Deliveries))
}
