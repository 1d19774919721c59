// Package producer scans a fleet's storage and publishes one migration job
// per tenant DB to NATS JetStream.
package producer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/internal/retry"
	"github.com/shoal-dev/shoal/tenants"
	"go.uber.org/zap"
)

// Options configure one producer run.
type Options struct {
	Root    string
	Pattern string // default tenants.DefaultPattern
	RunID   string // required
	Node    string // default fleet.DefaultNode
	// OnlyBehind publishes only DBs whose version (read without the write
	// lock) is not the head: the straggler re-check. DBs at head are
	// neither published nor reported.
	OnlyBehind bool
	// ReportAtHead (without OnlyBehind): the producer reports the DBs it
	// finds at head as `current` itself, in results signed Worker, and
	// publishes jobs only for the others. Without it every DB gets a job
	// and goes through a worker (e.g. workers that verify drift).
	ReportAtHead bool
	// Engine gives the head (the jobs' target) and versions. If it also
	// has Migrate (*engine.Engine), a DB whose version is the head is
	// reported current only if a dry run finds nothing to do and nothing
	// to refuse (a changed file, a missing one), as a worker would.
	Engine tenants.Versioner
	// Names of streams and subjects.
	Names fleet.Names
	// Window bounds the publishes awaiting the server's ack (default 256).
	Window int
	// Checkers read versions concurrently (default 4).
	Checkers int
	// High publishes the jobs on the high-priority subject.
	High bool
	// Adopt sets adopt on every job: workers take over another tool's
	// history on first contact (docs/switching.md).
	Adopt bool
	// Worker signs the results the producer publishes itself (default
	// "producer:<host>").
	Worker string
	Logger *zap.Logger
	// OnExpect is called with the job id of every job and producer-made
	// result of this pass before it is published (Pass.Expect), so a
	// reader of the results counts exactly this pass.
	OnExpect func(jobID string)
	// OnPublished is called after each job is acknowledged by the server.
	OnPublished func(job fleet.Job, duplicate bool)
	// OnCurrent, when set, receives the results the producer makes (`current`
	// with ReportAtHead, `skipped` once halted) instead of their being
	// published: for a caller that
	// reads the results itself and whose results stream nobody else reads
	// (`shoal run`'s embedded one), a fleet at head then costs no message.
	// OnExpect is not called for them.
	OnCurrent func(fleet.Result)
	// PassID, with OnCurrent, publishes those results too (others read
	// them), marked with it in the fleet.PassHeader header: the caller that
	// has them from OnCurrent skips them when it reads the run's results
	// (FollowOptions.SkipPass), and holds no job id for them.
	PassID string
	// SolePass (ProducePass): the results stream holds no result of this
	// run id but this pass's (`shoal run`'s embedded server, new for each
	// run), so every result read is counted and no job id is kept for the
	// pass (about 30 bytes a job).
	SolePass bool
	// BeforeJob, when set, is called before each job is published and may
	// wait: `shoal run` keeps its producer a bounded number of jobs ahead
	// of the results. An error stops the producer.
	BeforeJob func(ctx context.Context) error
	// OnDone is called with the stats once everything is published, before
	// Produce returns (and before ProducePass waits for the results).
	OnDone func(*Stats)

	// MaxFailures > 0 halts the run once that many tenants failed: it is
	// carried in every job (workers skip the run's jobs from then on) and
	// ProducePass stops publishing (the rest are reported `skipped`).
	MaxFailures int
	// Canary > 0 (ProducePass): the first Canary tenants that need a job
	// are published first, alone; the rest only when every canary ended
	// migrated or current. CanaryTenants names canary tenants instead.
	Canary        int
	CanaryTenants []string

	// Filter, when set, decides which tenants this Produce handles (after
	// their version is read; job: the tenant needs a job). The others are
	// left out entirely: no job, no result, not counted.
	Filter func(tenant string, job bool) bool
	// Halted, when set, is asked before each job is published: a non-empty
	// reason publishes a `skipped` result instead (the run halted).
	Halted func() string
	// Partial: another Produce of the same pass follows (a canary wave):
	// the manifest is not marked complete. TotalBase is added to the
	// total of the complete manifest (the tenants of earlier waves).
	Partial   bool
	TotalBase int
}

// Stats say what a run published.
type Stats struct {
	Jobs       int // jobs in the run: published now or already (duplicates)
	Published  int // new jobs stored
	Duplicates int // already in the stream for this run id and DB state (Nats-Msg-Id)
	Current    int // found at head and reported current by the producer itself
	Halted     int // not published because the run halted: reported skipped by the producer
	Skipped    int // at head, not published (OnlyBehind)
	Found      int // DB files the walk matched
	// Ignored counts entries matching the pattern that the walk refused:
	// symlinks (never followed below the root) and files that are not
	// regular; IgnoredSample names the first few ("tenant: reason").
	Ignored       int
	IgnoredSample []string
	Started       time.Time
	Finished      time.Time
	// Canaries are the tenants of the canary wave (ProducePass); HaltReason
	// is why the run halted ("" if it did not).
	Canaries   []string
	HaltReason string
}

// Expected is how many results the pass waits for: one per job and one
// per DB the producer reported current itself.
func (s *Stats) Expected() int { return s.Jobs + s.Current + s.Halted }

// headCache is the part of *engine.Engine that knows, for one stat(), that
// a DB was verified at head through the migration set's fingerprint.
type headCache interface {
	VerifiedAtHead(path string) bool
}

// prober is the part of *engine.Engine that reads a version and, for a DB
// verified at head, the state of its file, in one look.
type prober interface {
	Probe(ctx context.Context, path string) (engine.Probe, error)
}

// dryRunner is the part of *engine.Engine that confirms a DB at head.
type dryRunner interface {
	Migrate(ctx context.Context, path string, o engine.MigrateOptions) (*engine.Result, error)
}

// JobID names the job of one tenant in a run, for the state of its DB file
// the producer saw (state, see DBState). The same run, tenant and unchanged
// DB give the same id, used as Nats-Msg-Id: a producer re-run after a crash
// adds no job for a DB that has not changed, while a DB that changed (fell
// behind again, was replaced) gets a new job.
func JobID(runID, tenant, state string) string {
	h := sha256.New()
	for _, s := range []string{runID, tenant, state} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// DBState describes the DB file at path as the producer sees it: the
// version it read (or the refusal), and the file's and its WAL's inode,
// size and times. Any commit changes it (in WAL mode, the -wal's size or
// time; after a checkpoint, the main file's).
func DBState(path string, version int64, verr error) string {
	var b strings.Builder
	if verr != nil {
		fmt.Fprintf(&b, "v=%s", engine.Outcome(verr))
	} else {
		fmt.Fprintf(&b, "v=%d", version)
	}
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Lstat(f)
		if err != nil || (f != path && fi.Size() == 0) {
			b.WriteString(" -")
			continue
		}
		fmt.Fprintf(&b, " %d/%d", fi.Size(), fi.ModTime().UnixNano())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			fmt.Fprintf(&b, "/%d/%d/%d", st.Dev, st.Ino, st.Ctim.Sec*1e9+st.Ctim.Nsec)
		}
	}
	return b.String()
}

// ErrWalk marks an error of the walk of --root (a missing or unreadable
// directory): re-running the producer does not help until that is fixed.
var ErrWalk = errors.New("walk")

type walkError struct{ err error }

func (e walkError) Error() string   { return e.err.Error() }
func (e walkError) Unwrap() []error { return []error{ErrWalk, e.err} }

// DefaultWorker is the producer's signature on the results it publishes.
func DefaultWorker() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return "producer:" + host
}

// Produce walks the fleet and publishes the jobs, then the run manifest with
// the total. It returns once every job is stored (acknowledged by the
// server). Publishing is asynchronous with at most Window unacknowledged
// messages; failed publishes are retried with the same Nats-Msg-Id, so a
// server restart loses and duplicates nothing.
func Produce(ctx context.Context, js jetstream.JetStream, o Options) (*Stats, error) {
	if err := fleet.ValidRunID(o.RunID); err != nil {
		return nil, err
	}
	if o.Pattern == "" {
		o.Pattern = tenants.DefaultPattern
	}
	if o.Node == "" {
		o.Node = fleet.DefaultNode
	}
	if err := fleet.ValidName("node", o.Node); err != nil {
		return nil, err
	}
	if err := tenants.ValidatePattern(o.Pattern); err != nil {
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
	if o.Worker == "" {
		o.Worker = DefaultWorker()
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("run_id", o.RunID))
	st := &Stats{Started: time.Now().UTC()}
	head := o.Engine.Head()
	dry, _ := o.Engine.(dryRunner)
	cache, _ := o.Engine.(headCache)
	probe, _ := o.Engine.(prober)
	man := fleet.Manifest{RunID: o.RunID, Root: o.Root, Pattern: o.Pattern, Node: o.Node, OnlyBehind: o.OnlyBehind,
		Head: head, StartedAt: st.Started}
	if err := publishManifest(ctx, js, o.Names, man); err != nil {
		return nil, err
	}
	subject := o.Names.JobSubject(o.Node, o.High)
	resultSubject := o.Names.ResultSubject(o.RunID)
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
	found := 0
	go func() {
		defer close(cands)
		walkErr = tenants.WalkSkipping(wctx, o.Root, o.Pattern, func(tenant, path string) error {
			found++
			select {
			case cands <- cand{tenant, path}:
				return nil
			case <-wctx.Done():
				return wctx.Err()
			}
		}, func(tenant, reason string) {
			st.Ignored++
			if len(st.IgnoredSample) < 5 {
				st.IgnoredSample = append(st.IgnoredSample, fleet.Shorten(tenant, 200)+": "+reason)
				log.Warn("not published", zap.String("entry", fleet.Shorten(tenant, 200)), zap.String("reason", reason))
			}
		})
	}()
	// An item is a job, or (current != nil) a result the producer reports.
	type item struct {
		job     fleet.Job
		current *fleet.Result
	}
	items := make(chan item, 64)
	var skipped int
	var smu sync.Mutex
	var wg sync.WaitGroup
	for range o.Checkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range cands {
				t0 := time.Now()
				var v int64
				var verr error
				verified, fileState := false, ""
				if probe != nil {
					var p engine.Probe
					p, verr = probe.Probe(wctx, c.path)
					v, verified, fileState = p.Version, p.AtHead, p.State
				} else {
					v, verr = o.Engine.Version(wctx, c.path)
					verified = verr == nil && v == head && cache != nil && cache.VerifiedAtHead(c.path)
				}
				atHead := verr == nil && v == head
				if atHead && o.OnlyBehind {
					if o.Filter == nil || o.Filter(c.tenant, false) {
						smu.Lock()
						skipped++
						smu.Unlock()
					}
					continue
				}
				if o.Filter != nil && !o.Filter(c.tenant, !(atHead && o.ReportAtHead)) {
					continue
				}
				// The target is part of the state: new migrations deployed
				// (another head) make every DB's job a new one. A DB
				// verified at head has its state from the probe's stats.
				var state string
				if verified && fileState != "" {
					state = fmt.Sprintf("target=%d v=%d %s", head, v, fileState)
				} else {
					state = fmt.Sprintf("target=%d %s", head, DBState(c.path, v, verr))
				}
				// Behind, ahead, unmanaged, corrupt or unreadable: a
				// worker reports it.
				var it item
				if atHead && o.ReportAtHead {
					if dry != nil && !verified {
						// Version said head without the fingerprint
						// (edited files, an older shoal): as a worker would.
						res, err := dry.Migrate(wctx, c.path, engine.MigrateOptions{MustExist: true, DryRun: true})
						atHead = err == nil && res != nil && len(res.Pending) == 0 && res.To == head
					}
					if atHead {
						// Its own id space: a later job for the same DB state
						// never takes this result for its own.
						r := fleet.Result{RunID: o.RunID, JobID: JobID(o.RunID, c.tenant, "current "+state), Tenant: c.tenant, Path: c.path,
							Outcome: engine.OutcomeCurrent, From: fleet.Int64(head), To: fleet.Int64(head),
							Applied: []engine.Applied{}, Attempt: 0, Worker: o.Worker,
							DurationMs: time.Since(t0).Milliseconds(), At: time.Now().UTC()}
						it.current = &r
					}
				}
				if it.current == nil {
					// A job (its id hashed only for a job: a DB reported
					// current needs none).
					it.job = fleet.Job{RunID: o.RunID, JobID: JobID(o.RunID, c.tenant, state), Tenant: c.tenant, Path: c.path,
						Target: head, RequestedAt: time.Now().UTC(), Priority: priority, MaxFailures: int64(max(o.MaxFailures, 0)), Adopt: o.Adopt}
				}
				select {
				case items <- it:
				case <-wctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(items) }()

	pub := &window{js: js, max: o.Window, log: log}
	var pubErr error
	for it := range items {
		if pubErr != nil {
			continue // drain
		}
		if it.current == nil && o.Halted != nil {
			if reason := o.Halted(); reason != "" {
				// The run halted: this tenant is reported skipped, in its
				// own id space, and no job is published.
				why := "not migrated: the run halted: " + reason
				r := fleet.Result{RunID: o.RunID, JobID: JobID(o.RunID, it.job.Tenant, "skipped "+it.job.JobID), Tenant: it.job.Tenant,
					Path: it.job.Path, Outcome: fleet.OutcomeSkipped, Applied: []engine.Applied{}, Error: &why,
					Worker: o.Worker, At: time.Now().UTC()}
				it.current = &r
			}
		}
		handed := false // to OnCurrent
		if r := it.current; r != nil && o.OnCurrent != nil {
			o.OnCurrent(*r)
			handed = true
			if o.PassID == "" {
				if r.Outcome == fleet.OutcomeSkipped {
					st.Halted++
				} else {
					st.Current++
				}
				continue
			}
		}
		if o.OnExpect != nil && !handed {
			if it.current != nil {
				o.OnExpect(it.current.JobID)
			} else {
				o.OnExpect(it.job.JobID)
			}
		}
		var p pendingPub
		if r := it.current; r != nil {
			data, _ := json.Marshal(r)
			msg := nats.NewMsg(resultSubject)
			msg.Data = data
			msg.Header.Set(jetstream.MsgIDHeader, "producer:"+r.JobID)
			if handed {
				msg.Header.Set(fleet.PassHeader, o.PassID)
			}
			skippedResult := r.Outcome == fleet.OutcomeSkipped
			p = pendingPub{tenant: r.Tenant, msg: msg, onAck: func(bool) {
				if skippedResult {
					st.Halted++
				} else {
					st.Current++
				}
			}}
		} else {
			job := it.job
			data, _ := json.Marshal(job)
			msg := nats.NewMsg(subject)
			msg.Data = data
			msg.Header.Set(jetstream.MsgIDHeader, job.JobID)
			p = pendingPub{tenant: job.Tenant, msg: msg, onAck: func(dup bool) {
				st.Jobs++
				if dup {
					st.Duplicates++
				} else {
					st.Published++
				}
				if o.OnPublished != nil {
					o.OnPublished(job, dup)
				}
			}}
		}
		if it.current == nil && o.BeforeJob != nil {
			if err := o.BeforeJob(wctx); err != nil {
				pubErr = err
				cancel()
				continue
			}
		}
		if err := pub.add(wctx, p); err != nil {
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
		return st, walkError{walkErr}
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.Skipped, st.Found = skipped, found
	st.Finished = time.Now().UTC()
	if !o.Partial {
		man.Complete, man.Total, man.Skipped, man.FinishedAt = true, o.TotalBase+st.Expected(), skipped, &st.Finished
		if err := publishManifest(ctx, js, o.Names, man); err != nil {
			return st, err
		}
	}
	if st.Ignored > 0 {
		log.Warn("entries matching the pattern were not published (symlinks below the root are never followed; only regular files are tenants)",
			zap.Int("count", st.Ignored), zap.Strings("first", st.IgnoredSample))
	}
	log.Info("jobs published", zap.Int("jobs", st.Jobs), zap.Int("new", st.Published), zap.Int("skipped_halted", st.Halted),
		zap.Int("duplicates", st.Duplicates), zap.Int("current_at_head", st.Current), zap.Int("skipped_at_head", skipped))
	if o.OnDone != nil {
		o.OnDone(st)
	}
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
// ends; onRetry, if set, is told about each failure retried.
func publishSync(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, onRetry func(error)) (*jetstream.PubAck, error) {
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
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
		if onRetry != nil {
			onRetry(err)
		}
		if err := backoff.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// window keeps at most max asynchronous publishes unacknowledged and
// retries those that fail.
type window struct {
	js      jetstream.JetStream
	max     int
	log     *zap.Logger
	pending []pendingPub
}

type pendingPub struct {
	tenant string
	msg    *nats.Msg
	onAck  func(duplicate bool)
	fut    jetstream.PubAckFuture
}

func (w *window) add(ctx context.Context, p pendingPub) error {
	for len(w.pending) >= w.max {
		if err := w.settleOldest(ctx); err != nil {
			return err
		}
	}
	fut, err := w.js.PublishMsgAsync(p.msg)
	if err != nil {
		// Too many stalled publishes or disconnected: settle, then publish
		// synchronously with retries.
		if err := w.flush(ctx); err != nil {
			return err
		}
		return w.sync(ctx, p)
	}
	p.fut = fut
	w.pending = append(w.pending, p)
	return nil
}

func (w *window) settleOldest(ctx context.Context) error {
	p := w.pending[0]
	w.pending = w.pending[1:]
	select {
	case ack := <-p.fut.Ok():
		p.onAck(ack.Duplicate)
		return nil
	case err := <-p.fut.Err():
		w.log.Warn("publish failed, retrying", zap.String("tenant", p.tenant), zap.Error(err))
		return w.sync(ctx, p)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *window) sync(ctx context.Context, p pendingPub) error {
	ack, err := publishSync(ctx, w.js, p.msg, func(err error) {
		w.log.Warn("publish failed, retrying", zap.String("tenant", p.tenant), zap.Error(err))
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("cannot publish the job of %s: %w", p.tenant, err)
	}
	p.onAck(ack.Duplicate)
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
	if err := fleet.ValidRunID(job.RunID); err != nil {
		return err
	}
	if err := fleet.CheckTenant(job.Tenant); err != nil {
		return fmt.Errorf("tenant %q: %w", fleet.Shorten(job.Tenant, 200), err)
	}
	job.Priority = fleet.PriorityHigh
	if job.RequestedAt.IsZero() {
		job.RequestedAt = time.Now().UTC()
	}
	if job.JobID == "" {
		job.JobID = JobID(job.RunID, job.Tenant, "enqueue "+job.RequestedAt.Format(time.RFC3339Nano))
	}
	data, _ := json.Marshal(job)
	return publishRetry(ctx, js, names.JobSubject(node, true), data, job.JobID)
}
