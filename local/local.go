// Package local runs a whole fleet migration in one process: an embedded
// NATS server with JetStream, the producer and one worker migrating N DBs at
// once (`shoal run`). It sits above producer and worker and drives both.
package local

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/embedded"
	"github.com/shoal-dev/shoal/producer"
	"github.com/shoal-dev/shoal/tenants"
	"github.com/shoal-dev/shoal/worker"
	"go.uber.org/zap"
)

// Engine is what a local run needs of the engine.
type Engine interface {
	worker.Migrator
	Version(ctx context.Context, path string) (int64, error)
}

// Options configure a local run.
type Options struct {
	Engine  Engine
	Root    string
	Pattern string
	RunID   string // default: a new run id
	// Workers is how many DBs are migrated at once (default 4), by one
	// worker of that concurrency.
	Workers  int
	Settings fleet.Settings
	Backup   engine.BackupOptions
	NoBackup bool
	// Verify checks each DB's schema against its version after migrating
	// (every DB then goes through a worker, ReportAtHead or not).
	Verify bool
	// ReportAtHead: DBs found at head are reported current by the producer
	// without a job (producer.Options.ReportAtHead).
	ReportAtHead bool
	// Adopt: take over other tools' histories on first contact (jobs with
	// adopt set).
	Adopt bool
	// Backoff before retrying a failed job (default 1s in a local run).
	Backoff time.Duration
	Logger  *zap.Logger
	// Progress is called about every ProgressEvery while the run goes on,
	// and once at the end.
	Progress      func(t *fleet.Tracker)
	ProgressEvery time.Duration
	// MaxFailures, Canary, CanaryTenants: the rollout (producer.Options).
	MaxFailures   int
	Canary        int
	CanaryTenants []string
	// OnHalt is told why the run halted, if it did.
	OnHalt func(reason string)
	// Server, when set, is used instead of starting an embedded one.
	Server *embedded.Server
	// StreamReport returns the report as Tracker.StreamReport does: its
	// databases are read one at a time when written, never all held.
	StreamReport bool
}

// runDuplicates is the de-duplication window of a local run's streams: the
// producer publishes each job and result once (retrying within seconds),
// and the server holds every id for the window (about 90 bytes each). The
// producer publishes 100,000 jobs in about 40 s while the workers take
// minutes: a 30 s window held 7 MB of ids at the peak of such a run (heap
// profile). A job or result published again after the window (a publish
// retried that long) is handled twice, and the tracker merges the two.
const runDuplicates = 5 * time.Second

// Run migrates every DB under Root matching Pattern and returns the report
// (one final result per DB). The error is about the run itself (NATS, the
// walk); DBs that did not reach head are in the report.
func Run(ctx context.Context, o Options) (*fleet.Report, error) {
	log := o.withDefaults()
	srv := o.Server
	if srv == nil {
		var err error
		srv, err = embedded.Start(embedded.Options{DontListen: true})
		if err != nil {
			return nil, err
		}
		defer srv.Shutdown()
	}
	connect := func(name string) (*nats.Conn, error) {
		return srv.Conn(nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	}
	nc, err := connect("shoal run")
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	defer nc.Close()
	js, err := fleet.Check(ctx, nc)
	if err != nil {
		return nil, err
	}
	if _, _, err := fleet.Provision(ctx, js, o.Settings, fleet.DefaultNode); err != nil {
		return nil, err
	}

	start := time.Now()
	t := fleet.NewTracker(o.RunID, start)
	stop, err := startWorker(ctx, connect, o, log)
	if err != nil {
		return nil, err
	}
	defer stop()

	every := o.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	pace := newPacer(runAhead)
	// A paced producer's walk ends only near the end of the run: once it
	// is held, a walk that only counts gives the progress its total (a
	// re-check at head, or a small fleet, is never held: no second walk).
	countCtx, stopCount := context.WithCancel(ctx)
	defer stopCount()
	pace.firstWait = func() {
		go func() {
			n := 0
			if tenants.Walk(countCtx, o.Root, o.Pattern, func(string, string) error { n++; return nil }) == nil {
				t.SetEstimate(n)
			}
		}()
	}
	st, err, ferr := producer.ProducePass(ctx, ctx, js, producer.Options{
		Root: o.Root, Pattern: o.Pattern, RunID: o.RunID, Engine: o.Engine, Names: o.Settings.Names, Logger: log,
		ReportAtHead: o.ReportAtHead && !o.Verify, Worker: "producer:shoal-run", Adopt: o.Adopt,
		MaxFailures: o.MaxFailures, Canary: o.Canary, CanaryTenants: o.CanaryTenants,
		// The embedded results stream is read by this run only: the DBs
		// found at head go straight into the tracker, not through it.
		OnCurrent: t.Add,
		// A server started here is new: every result in it is this run's.
		SolePass:  o.Server == nil,
		BeforeJob: pace.beforeJob,
	}, t, fleet.FollowOptions{TickEvery: every, OnResult: pace.result, Tick: func() {
		if o.Progress != nil {
			o.Progress(t)
		}
	}})
	report := t.Report
	if o.StreamReport {
		report = t.StreamReport
	}
	if err != nil {
		stop()
		return report(time.Now()), err
	}
	stop()
	if st != nil && st.HaltReason != "" && o.OnHalt != nil {
		o.OnHalt(st.HaltReason)
	}
	if o.Progress != nil {
		o.Progress(t)
	}
	rep := report(time.Now())
	if ferr != nil && !errors.Is(ferr, context.Canceled) {
		return rep, ferr
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// withDefaults fills in the defaults of a local run and returns its logger.
func (o *Options) withDefaults() *zap.Logger {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.RunID == "" {
		o.RunID = fleet.NewRunID(time.Now())
	}
	if o.Pattern == "" {
		o.Pattern = tenants.DefaultPattern
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Settings.Duplicates <= 0 {
		o.Settings.Duplicates = runDuplicates
	}
	if o.Settings.ResultsDuplicates <= 0 {
		o.Settings.ResultsDuplicates = runDuplicates
	}
	if o.Logger == nil {
		return zap.NewNop()
	}
	return o.Logger
}

// startWorker starts the run's one worker, migrating o.Workers DBs at once:
// one connection, one pull loop, one reaper (the worker's Concurrency is
// the parallelism). stop ends it, waits for it and closes its connection;
// it may be called more than once.
func startWorker(ctx context.Context, connect func(name string) (*nats.Conn, error), o Options, log *zap.Logger) (stop func(), err error) {
	wnc, err := connect("shoal run worker")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			wnc.Close()
		}
	}()
	wjs, err := fleet.Check(ctx, wnc)
	if err != nil {
		return nil, err
	}
	w, err := worker.New(wnc, wjs, worker.Options{
		Engine: o.Engine, Root: o.Root, Concurrency: o.Workers, Name: "run-worker", Settings: o.Settings,
		Backoff: o.Backoff, Backup: o.Backup, NoBackup: o.NoBackup, Verify: o.Verify, Logger: log, PollWait: 250 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	if err := w.Provision(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(wctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			wnc.Close()
		})
	}, nil
}
