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
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"go.uber.org/zap"
)

// Verifier checks a DB's schema against its version (engine.Engine.Drift).
type Verifier interface {
	Drift(ctx context.Context, path string) ([]engine.SchemaDiff, error)
}

// Migrator is the part of the engine a worker uses.
type Migrator interface {
	Head() int64
	Migrate(ctx context.Context, path string, o engine.MigrateOptions) (*engine.Result, error)
}

// Options configure a worker.
type Options struct {
	Engine Migrator
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
	Logger   *zap.Logger

	// afterMigrate is a test hook run between the migration and the
	// publication of its result.
	afterMigrate func(ctx context.Context, job fleet.Job, attempt int)
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
}

// New prepares a worker on an open connection.
func New(nc *nats.Conn, js jetstream.JetStream, o Options) (*Worker, error) {
	if o.Engine == nil {
		return nil, errors.New("worker: no engine")
	}
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
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !w.ready.Load() {
			// A consumer was deleted: provision both again before
			// pulling, until that works (even if someone else created
			// them meanwhile: then this also re-reads their settings).
			if err := w.Provision(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				w.log.Warn("cannot provision the consumers, retrying", zap.Error(err), zap.Duration("in", backoff))
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				backoff = min(2*backoff, 5*time.Second)
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
			w.log.Warn("pull failed, retrying", zap.Error(err), zap.Duration("in", backoff))
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
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

// handle runs one job: migrate, publish the result, then ack (or nak with
// backoff, or term). migrated is called once the engine is done with the
// DB, before the result is published (not for jobs given back or retried).
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, migrated func()) {
	start := time.Now()
	attempt := 1
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
		seq = md.Sequence.Stream
	}
	var job fleet.Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil || job.RunID == "" || job.Path == "" {
		w.log.Error("invalid job message, terminating it", zap.String("subject", msg.Subject()), zap.ByteString("data", msg.Data()), zap.Error(err))
		_ = msg.Term()
		return
	}
	if job.Tenant == "" {
		job.Tenant = job.Path
	}
	log := w.log.With(zap.String("run_id", job.RunID), zap.String("tenant", job.Tenant), zap.Int("attempt", attempt))
	w.Metrics.inFlight.Add(1)
	defer w.Metrics.inFlight.Add(-1)
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

	log.Debug("migrating", zap.String("path", job.Path))
	res, err := w.migrate(ctx, job)
	if ctx.Err() != nil && err != nil {
		// Shutting down past the deadline: the engine rolled back; give the
		// job back at once, with no result (the delivery still counts
		// towards max deliver).
		log.Warn("job cancelled by shutdown, giving it back", zap.Error(err))
		_ = msg.Nak()
		w.Metrics.observe("cancelled", time.Since(start))
		return
	}
	if w.o.afterMigrate != nil {
		w.o.afterMigrate(ctx, job, attempt)
	}
	r := w.result(job, res, err, attempt, start)
	final := true
	switch {
	case err == nil:
	case engine.IsRefusal(err) || errors.Is(err, engine.ErrNotFound):
		// Retrying cannot help: report and drop the job now.
	case int64(attempt) < w.maxDeliver(ctx, msg):
		final = false
	}
	if !final {
		stopHB()
		delay := w.backoff(attempt)
		log.Warn("migration failed, will retry", zap.Error(err), zap.Duration("retry_in", delay), zap.Int64("max_deliver", w.maxDel.Load()))
		_ = msg.NakWithDelay(delay)
		w.Metrics.observe("retry", time.Since(start))
		return
	}
	// The migration is done: report it even if shutdown's deadline passed.
	migrated()
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer pcancel()
	if err := w.publish(pctx, r, seq); err != nil {
		// Not acked: redelivered after the ack wait and handled again (the
		// engine makes the second run a no-op).
		log.Error("cannot publish result, leaving the job for redelivery", zap.Error(err))
		return
	}
	if fleet.AtHead(r.Outcome) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if aerr := msg.DoubleAck(actx); aerr != nil {
			log.Warn("ack not confirmed; the job may be redelivered and found current", zap.Error(aerr))
		}
		cancel()
	} else {
		// A refusal, a vanished file or the last failed attempt: remove
		// the job from the work queue now.
		_ = msg.Term()
	}
	w.Metrics.observe(r.Outcome, time.Since(start))
	fields := []zap.Field{zap.String("outcome", r.Outcome), zap.Int64("duration_ms", r.DurationMs), zap.Int("applied", len(r.Applied))}
	if r.Error != nil {
		log.Warn("job done", append(fields, zap.String("error", *r.Error))...)
	} else {
		log.Info("job done", fields...)
	}
}

func (w *Worker) migrate(ctx context.Context, job fleet.Job) (res *engine.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("worker panic while migrating %s: %v", job.Path, p)
		}
	}()
	mo := engine.MigrateOptions{MustExist: true}
	head := w.o.Engine.Head()
	if job.Target > head {
		return nil, fmt.Errorf("job targets version %d but this worker's migrations end at %d: deploy the new migrations to the workers", job.Target, head)
	}
	if job.Target > 0 && job.Target < head {
		mo.To = job.Target
	}
	if !w.o.NoBackup {
		b := w.o.Backup
		mo.Backup = &b
	}
	res, err = w.o.Engine.Migrate(ctx, job.Path, mo)
	if err != nil || !w.o.Verify {
		return res, err
	}
	v, ok := w.o.Engine.(Verifier)
	if !ok {
		return res, errors.New("worker: --verify needs an engine that can check drift")
	}
	diffs, err := v.Drift(ctx, job.Path)
	if err != nil {
		return res, err
	}
	if len(diffs) > 0 {
		return res, &engine.DBError{Path: job.Path, Kind: engine.ErrDrifted, Detail: engine.DescribeDiffs(diffs),
			Hint: "run `shoal diff --db " + job.Path + "` and repair the DB or restore it from a backup"}
	}
	return res, nil
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
	d := w.o.Backoff
	for i := 1; i < attempt && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.o.MaxBackoff)
}

// publish stores the result, retrying through reconnects until ctx ends.
// The message id makes retries of the same attempt idempotent.
func (w *Worker) publish(ctx context.Context, r fleet.Result, seq uint64) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%s:%s:%d:%d", r.RunID, r.Tenant, seq, r.Attempt)
	subj := w.o.Settings.ResultSubject(r.RunID)
	backoff := 100 * time.Millisecond
	for {
		msg := nats.NewMsg(subj)
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, id)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := w.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || w.nc.IsClosed() {
			return fmt.Errorf("publish result: %w", err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		if backoff < 2*time.Second {
			backoff *= 2
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
	var job fleet.Job
	if json.Unmarshal(raw.Data, &job) != nil || job.RunID == "" {
		_ = st.DeleteMsg(ctx, adv.StreamSeq)
		return
	}
	msg := fmt.Sprintf("gave up after %d deliveries: every attempt timed out (worker died or exceeded the ack wait without heartbeats)", adv.Deliveries)
	r := fleet.Result{RunID: job.RunID, JobID: job.JobID, Tenant: job.Tenant, Path: job.Path, Outcome: engine.OutcomeFailed,
		Applied: []engine.Applied{}, Error: &msg, Attempt: adv.Deliveries, Worker: w.o.Name, At: time.Now().UTC()}
	if err := w.publish(ctx, r, adv.StreamSeq); err != nil {
		w.log.Error("cannot publish the final result of an abandoned job", zap.String("tenant", job.Tenant), zap.Error(err))
		return
	}
	_ = st.DeleteMsg(ctx, adv.StreamSeq)
	w.Metrics.observe(engine.OutcomeFailed, 0)
	w.log.Warn("job abandoned after max deliveries", zap.String("run_id", job.RunID), zap.String("tenant", job.Tenant), zap.Int("attempt", adv.Deliveries))
}
