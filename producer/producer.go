// Package producer scans a fleet's storage and publishes one migration job
// per tenant DB to NATS JetStream.
package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
	"go.uber.org/zap"
)

// Options configure one producer run.
type Options struct {
	Root    string
	Pattern string // default fleet.DefaultPattern
	RunID   string // required
	Node    string // default fleet.DefaultNode
	// OnlyBehind publishes only DBs whose version (read without the write
	// lock) is not the head: the straggler re-check.
	OnlyBehind bool
	// Engine gives the head (the jobs' target) and, for OnlyBehind, versions.
	Engine fleet.Versioner
	// Names of streams and subjects.
	Names fleet.Names
	// Window bounds the publishes awaiting the server's ack (default 256).
	Window int
	// Checkers read versions concurrently for OnlyBehind (default 4).
	Checkers int
	// High publishes the jobs on the high-priority subject.
	High   bool
	Logger *zap.Logger
	// OnPublished is called after each job is acknowledged by the server.
	OnPublished func(job fleet.Job, duplicate bool)
}

// Stats say what a run published.
type Stats struct {
	Jobs       int // jobs in the run: published now or already (duplicates)
	Published  int // new jobs stored
	Duplicates int // already in the stream for this run id (Nats-Msg-Id)
	Skipped    int // at head (OnlyBehind)
	Started    time.Time
	Finished   time.Time
}

// MsgID is the de-duplication id of a tenant's job in a run.
func MsgID(runID, tenant string) string { return runID + ":" + tenant }

// Produce walks the fleet and publishes the jobs, then the run manifest with
// the total. It returns once every job is stored (acknowledged by the
// server). Publishing is asynchronous with at most Window unacknowledged
// messages; failed publishes are retried with the same Nats-Msg-Id, so a
// server restart loses and duplicates nothing.
func Produce(ctx context.Context, js jetstream.JetStream, o Options) (*Stats, error) {
	if err := fleet.ValidName("run id", o.RunID); err != nil {
		return nil, err
	}
	if o.Pattern == "" {
		o.Pattern = fleet.DefaultPattern
	}
	if o.Node == "" {
		o.Node = fleet.DefaultNode
	}
	if err := fleet.ValidName("node", o.Node); err != nil {
		return nil, err
	}
	if err := fleet.ValidatePattern(o.Pattern); err != nil {
		return nil, err
	}
	if o.Window <= 0 {
		o.Window = 256
	}
	if abs, err := filepath.Abs(o.Root); err == nil {
		o.Root = abs // jobs carry absolute paths: workers run elsewhere
	}
	if o.Checkers <= 0 {
		o.Checkers = 4
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("run_id", o.RunID))
	st := &Stats{Started: time.Now().UTC()}
	head := o.Engine.Head()
	man := fleet.Manifest{RunID: o.RunID, Root: o.Root, Pattern: o.Pattern, Node: o.Node, OnlyBehind: o.OnlyBehind,
		Head: head, StartedAt: st.Started}
	if err := publishManifest(ctx, js, o.Names, man); err != nil {
		return nil, err
	}
	subject := o.Names.JobSubject(o.Node, o.High)
	priority := fleet.PriorityNormal
	if o.High {
		priority = fleet.PriorityHigh
	}

	// walk -> (version checkers) -> publisher
	type cand struct{ tenant, path string }
	cands := make(chan cand, 64)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var walkErr error
	go func() {
		defer close(cands)
		walkErr = fleet.Walk(wctx, o.Root, o.Pattern, func(tenant, path string) error {
			select {
			case cands <- cand{tenant, path}:
				return nil
			case <-wctx.Done():
				return wctx.Err()
			}
		})
	}()
	jobs := make(chan fleet.Job, 64)
	var skipped int
	var smu sync.Mutex
	var wg sync.WaitGroup
	n := 1
	if o.OnlyBehind {
		n = o.Checkers
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range cands {
				if o.OnlyBehind {
					v, err := o.Engine.Version(wctx, c.path)
					if err == nil && v == head {
						smu.Lock()
						skipped++
						smu.Unlock()
						continue
					}
					// Behind, ahead, unmanaged, corrupt or unreadable: a
					// worker reports it.
				}
				job := fleet.Job{RunID: o.RunID, Tenant: c.tenant, Path: c.path, Target: head,
					RequestedAt: time.Now().UTC(), Priority: priority}
				select {
				case jobs <- job:
				case <-wctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(jobs) }()

	pub := &window{js: js, max: o.Window, log: log, onAck: func(j fleet.Job, dup bool) {
		st.Jobs++
		if dup {
			st.Duplicates++
		} else {
			st.Published++
		}
		if o.OnPublished != nil {
			o.OnPublished(j, dup)
		}
	}}
	var pubErr error
	for job := range jobs {
		if pubErr != nil {
			continue // drain
		}
		data, _ := json.Marshal(job)
		msg := nats.NewMsg(subject)
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, MsgID(o.RunID, job.Tenant))
		if err := pub.add(wctx, job, msg); err != nil {
			pubErr = err
			cancel()
		}
	}
	if pubErr == nil {
		pubErr = pub.flush(ctx)
	}
	if pubErr != nil {
		return st, pubErr
	}
	if walkErr != nil {
		return st, walkErr
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.Skipped = skipped
	st.Finished = time.Now().UTC()
	man.Complete, man.Total, man.Skipped, man.FinishedAt = true, st.Jobs, skipped, &st.Finished
	if err := publishManifest(ctx, js, o.Names, man); err != nil {
		return st, err
	}
	log.Info("jobs published", zap.Int("jobs", st.Jobs), zap.Int("new", st.Published),
		zap.Int("duplicates", st.Duplicates), zap.Int("skipped_at_head", skipped))
	return st, nil
}

func publishManifest(ctx context.Context, js jetstream.JetStream, names fleet.Names, m fleet.Manifest) error {
	data, _ := json.Marshal(m)
	return publishRetry(ctx, js, names.ManifestSubject(m.RunID), data, "")
}

// publishRetry publishes synchronously, retrying transient failures (a
// server restart) until ctx ends. msgID, if set, makes retries idempotent.
func publishRetry(ctx context.Context, js jetstream.JetStream, subject string, data []byte, msgID string) error {
	msg := nats.NewMsg(subject)
	msg.Data = data
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := publishSync(ctx, js, msg, nil); err != nil {
		return fmt.Errorf("publish to %s: %w", subject, err)
	}
	return nil
}

// publishSync publishes msg until the server stores it, retrying transient
// failures (no responders, timeouts, reconnects) with backoff until ctx
// ends; retry, if set, is told about each failure retried.
func publishSync(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, retry func(error)) (*jetstream.PubAck, error) {
	backoff := 100 * time.Millisecond
	for {
		m := nats.NewMsg(msg.Subject)
		m.Data, m.Header = msg.Data, msg.Header
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code != 503 {
			return nil, err
		}
		if retry != nil {
			retry(err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// window keeps at most max asynchronous publishes unacknowledged and
// retries those that fail.
type window struct {
	js      jetstream.JetStream
	max     int
	log     *zap.Logger
	onAck   func(fleet.Job, bool)
	pending []pendingPub
}

type pendingPub struct {
	job fleet.Job
	msg *nats.Msg
	fut jetstream.PubAckFuture
}

func (w *window) add(ctx context.Context, job fleet.Job, msg *nats.Msg) error {
	for len(w.pending) >= w.max {
		if err := w.settleOldest(ctx); err != nil {
			return err
		}
	}
	fut, err := w.js.PublishMsgAsync(msg)
	if err != nil {
		// Too many stalled publishes or disconnected: settle, then publish
		// synchronously with retries.
		if err := w.flush(ctx); err != nil {
			return err
		}
		return w.sync(ctx, job, msg)
	}
	w.pending = append(w.pending, pendingPub{job, msg, fut})
	return nil
}

func (w *window) settleOldest(ctx context.Context) error {
	p := w.pending[0]
	w.pending = w.pending[1:]
	select {
	case ack := <-p.fut.Ok():
		w.onAck(p.job, ack.Duplicate)
		return nil
	case err := <-p.fut.Err():
		w.log.Warn("publish failed, retrying", zap.String("tenant", p.job.Tenant), zap.Error(err))
		return w.sync(ctx, p.job, p.msg)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *window) sync(ctx context.Context, job fleet.Job, msg *nats.Msg) error {
	ack, err := publishSync(ctx, w.js, msg, func(err error) {
		w.log.Warn("publish failed, retrying", zap.String("tenant", job.Tenant), zap.Error(err))
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("cannot publish the job of %s: %w", job.Tenant, err)
	}
	w.onAck(job, ack.Duplicate)
	return nil
}

func (w *window) flush(ctx context.Context) error {
	for len(w.pending) > 0 {
		if err := w.settleOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Enqueue publishes one high-priority job (`shoal enqueue`). Its message id
// includes the request time, so enqueuing the same tenant again is a new job.
func Enqueue(ctx context.Context, js jetstream.JetStream, names fleet.Names, node string, job fleet.Job) error {
	if node == "" {
		node = fleet.DefaultNode
	}
	if err := fleet.ValidName("node", node); err != nil {
		return err
	}
	if err := fleet.ValidName("run id", job.RunID); err != nil {
		return err
	}
	job.Priority = fleet.PriorityHigh
	if job.RequestedAt.IsZero() {
		job.RequestedAt = time.Now().UTC()
	}
	data, _ := json.Marshal(job)
	id := fmt.Sprintf("%s:%s:%d", job.RunID, job.Tenant, job.RequestedAt.UnixNano())
	return publishRetry(ctx, js, names.JobSubject(node, true), data, id)
}
