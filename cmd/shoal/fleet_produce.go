package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/producer"
	"github.com/shoal-dev/shoal/tenants"
	"github.com/urfave/cli/v2"
)

func produceCommand() *cli.Command {
	return &cli.Command{
		Name:  "produce",
		Usage: "publish one migration job per tenant DB under --root to NATS JetStream",
		Description: "Walks --root (streaming) for files matching --pattern. DBs found at head are reported\n" +
			"`current` by the producer itself (worker \"producer:<host>\"); every other DB gets a job on\n" +
			"shoal.jobs.<node>. A run id names one pass: a job's Nats-Msg-Id is its job_id, made of the\n" +
			"run id, the tenant and the state of its DB file, so re-running a crashed producer with the\n" +
			"same --run-id adds no job for a DB that has not changed, while the same command run later\n" +
			"publishes every DB behind at that moment. --only-behind publishes only DBs not at head (the\n" +
			"straggler re-check) and reports nothing about the others. --visit-all sends every DB through\n" +
			"a worker (e.g. workers started with --verify). --wait follows the results of this pass,\n" +
			"shows progress and exits 0 only if every DB ended at head. A --root where --pattern matches\n" +
			"nothing exits 1 unless --allow-empty.\n\n" +
			"Example: shoal produce --root /srv/tenants --run-id release-42 --wait --report run.json",
		Flags: append([]cli.Flag{
			rootFlag(), patternFlag(), dirFlag(), natsFlag(), nodeFlag(),
			runIDFlag("run id (default: run-<time>); the same id again is another pass of the run (see above)"),
			&cli.BoolFlag{Name: "only-behind", Usage: "publish and report only DBs whose version is not the head"},
			&cli.BoolFlag{Name: "visit-all", Usage: "publish a job for every DB, also those at head (workers report them)"},
			adoptFlag(),
			allowEmptyFlag(),
			&cli.BoolFlag{Name: "wait", Usage: "follow the results until every DB reported; exit 1 unless all are at head"},
			&cli.StringFlag{Name: "report", Usage: "with --wait: write the run's report (JSON) to this file"},
			&cli.DurationFlag{Name: "timeout", Usage: "with --wait: give up waiting after this long (0: no limit)"},
			listenFlag(),
			&cli.IntFlag{Name: "window", Value: 256, Usage: "publishes awaiting the server's ack at once"},
			&cli.DurationFlag{Name: "idle-check", Value: 10 * time.Second, Hidden: true, Usage: "with --wait: after this long, warn if no worker pulls jobs of --node"},
			emptyHintFlag(),
		}, append(nameFlags(), rolloutFlags()...)...),
		Action: produceAction,
	}
}

func produceAction(c *cli.Context) error {
	root, err := requireString(c, "root", "SHOAL_ROOT")
	if err != nil {
		return err
	}
	if err := checkSettings(c); err != nil {
		return err
	}
	if c.String("report") != "" && !c.Bool("wait") {
		return usageError("--report needs --wait (or use `shoal results --run-id ID --json`)")
	}
	if c.String("listen") != "" && !c.Bool("wait") {
		return usageError("--listen needs --wait: it serves the progress of the run being followed")
	}
	if c.Bool("visit-all") && c.Bool("only-behind") {
		return usageError("--visit-all and --only-behind exclude each other: --only-behind publishes only the DBs behind, --visit-all every DB")
	}
	canary, canaryTenants, maxFailures, err := rolloutOptions(c)
	if err != nil {
		return err
	}
	if (canary > 0 || len(canaryTenants) > 0) && !c.Bool("wait") {
		return usageError("--canary and --canary-tenants need --wait: the rest of the fleet is published only after the canaries' results are read")
	}
	runID := c.String("run-id")
	if runID == "" {
		runID = fleet.NewRunID(time.Now())
	}
	if err := checkReportPath(c.String("report")); err != nil {
		return err
	}
	if err := tenants.CheckRoot(root); err != nil {
		return err
	}
	env, err := newFleetEnv(c, envSpec{engine: true, conn: "shoal produce " + runID, provision: true})
	if err != nil {
		return err
	}
	defer env.Close()
	env.e.SetAtHeadCache(oneShotCache)
	softMemoryLimit()
	o := producer.Options{
		Root: root, Pattern: c.String("pattern"), RunID: runID, Node: c.String("node"),
		OnlyBehind: c.Bool("only-behind"), Adopt: c.Bool("adopt"), ReportAtHead: !c.Bool("visit-all"), Engine: env.e, Names: env.names,
		Window: c.Int("window"), Logger: env.log,
		Canary: canary, CanaryTenants: canaryTenants, MaxFailures: maxFailures,
	}
	fmt.Fprintf(c.App.ErrWriter, "run %s: publishing jobs for %s (%s)\n", runID, root, c.String("pattern"))
	if !c.Bool("wait") {
		return produceOnly(c, env, o, root)
	}
	return produceAndWait(c, env, o, root)
}

// produceOnly publishes the jobs of a run and prints its id (no --wait).
func produceOnly(c *cli.Context, env *fleetEnv, o producer.Options, root string) error {
	ctx, js, runID := env.ctx, env.js, o.RunID
	st, err := producer.Produce(ctx, js, o)
	if err != nil {
		return produceFailure(runID, err)
	}
	printPublished(c, runID, st)
	if err := checkEmpty(c, root, st); err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, runID)
	return nil
}

// produceAndWait publishes the jobs of a run (the canary wave first, if
// any), follows its results with a progress line, warns when no worker
// pulls, and ends with the summary and --report (--wait).
func produceAndWait(c *cli.Context, env *fleetEnv, o producer.Options, root string) error {
	ctx, js, runID, s := env.ctx, env.js, o.RunID, fleet.Settings{Names: env.names}
	t := fleet.NewTracker(runID, time.Now())
	stopMetrics, err := serveTrackerMetrics(c, runID, t)
	if err != nil {
		return err
	}
	defer stopMetrics()
	waitCtx := ctx
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	pp := &progressPrinter{W: c.App.ErrWriter, TTY: isTerminal(c.App.ErrWriter), Interval: 5 * time.Second}
	every := time.Second
	if pp.TTY {
		every = 200 * time.Millisecond
	}
	idleCtx, stopIdle := context.WithCancel(waitCtx)
	defer stopIdle()
	idleDone := make(chan struct{})
	go func() {
		defer close(idleDone)
		warnIdleNode(idleCtx, c, js, s, c.String("node"), c.Duration("idle-check"), t)
	}()
	o.OnDone = func(st *producer.Stats) {
		pp.Done()
		printPublished(c, runID, st)
	}
	st, perr, ferr := producer.ProducePass(ctx, waitCtx, js, o, t, fleet.FollowOptions{TickEvery: every,
		Tick: func() { pp.Show(t.Progress(time.Now()), time.Now()) }})
	stopIdle()
	<-idleDone
	if perr != nil {
		pp.Done()
		return produceFailure(runID, perr)
	}
	if err := checkEmpty(c, root, st); err != nil {
		pp.Done()
		return err
	}
	pp.Force(t.Progress(time.Now())) // final line, even off a TTY
	pp.Done()
	if ferr != nil {
		return failure(ferr, "run %s: reading results: %v", runID, ferr)
	}
	return finishRun(c, t, c.String("report"))
}

// produceFailure is the one line for a producer that stopped: the re-run
// hint only where re-running helps (not for a bad --root).
func produceFailure(runID string, err error) error {
	if errors.Is(err, producer.ErrWalk) || errors.Is(err, tenants.ErrRoot) {
		return failure(err, "run %s: %v", runID, err)
	}
	return failure(err, "run %s: %v (re-run with the same --run-id: jobs already published are not duplicated)", runID, err)
}

func printPublished(c *cli.Context, runID string, st *producer.Stats) {
	if st.Halted > 0 {
		fmt.Fprintf(c.App.ErrWriter, "run %s: %d tenants not published: the run halted (reported skipped)\n", runID, st.Halted)
	}
	fmt.Fprintf(c.App.ErrWriter, "run %s: %d jobs (%d new, %d already published", runID, st.Jobs, st.Published, st.Duplicates)
	if c.Bool("only-behind") {
		fmt.Fprintf(c.App.ErrWriter, ", %d skipped at head", st.Skipped)
	} else if st.Current > 0 {
		fmt.Fprintf(c.App.ErrWriter, "), %d at head reported current by the producer", st.Current)
		fmt.Fprintln(c.App.ErrWriter)
		return
	}
	fmt.Fprintln(c.App.ErrWriter, ")")
}

// checkEmpty fails a pass whose walk matched no DB, unless --allow-empty.
func checkEmpty(c *cli.Context, root string, st *producer.Stats) error {
	if st.Found > 0 || c.Bool("allow-empty") {
		return nil
	}
	return emptyFleet(c, root)
}
