package main

import (
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/local"
	"github.com/shoal-dev/shoal/schema"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "migrate a whole fleet in one process: producer + one worker migrating N DBs at once over an embedded NATS server",
		Description: "No NATS to install: an in-process nats-server with JetStream (store in a temporary\n" +
			"directory, removed afterwards, no port opened) carries the jobs and results exactly as\n" +
			"in a distributed run. Shows progress, ends with a summary, exits 0 only if every DB\n" +
			"ended at head. DBs found at head are reported current without a job unless --visit-all\n" +
			"(or --verify, which checks every DB). A --root where --pattern matches nothing exits 1\n" +
			"unless --allow-empty.\n\n" +
			"Example: shoal run --root ./tenants --workers 8 --report run.json",
		Flags: append([]cli.Flag{
			rootFlag(), patternFlag(), dirFlag(), busyTimeoutFlag(), scriptTimeoutFlag(),
			&cli.IntFlag{Name: "workers", Value: 4, Usage: "DBs migrated at once"},
			&cli.StringFlag{Name: "report", Usage: "write the run's report (JSON) to this file"},
			runIDFlag("run id (default: run-<time>)"),
			&cli.BoolFlag{Name: "visit-all", Usage: "send every DB through a worker, also those at head"},
			adoptFlag(),
			allowEmptyFlag(),
			&cli.DurationFlag{Name: "backoff", Value: time.Second, Usage: "delay before retrying a failed DB; doubles per attempt"},
			listenFlag(),
		}, append(append(backupFlags(), consumerFlags()...), rolloutFlags()...)...),
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	root, err := requireString(c, "root", "SHOAL_ROOT")
	if err != nil {
		return err
	}
	if err := checkSettings(c); err != nil {
		return err
	}
	if c.Int("workers") < 1 {
		return usageError("--workers must be 1 or more")
	}
	canary, canaryTenants, maxFailures, err := rolloutOptions(c)
	if err != nil {
		return err
	}
	if err := checkReportPath(c.String("report")); err != nil {
		return err
	}
	if err := checkRoot(root); err != nil {
		return err
	}
	// No NATS connection: local.Run starts its own embedded server.
	env, err := newFleetEnv(c, envSpec{engine: true})
	if err != nil {
		return err
	}
	defer env.Close()
	log, e, ctx := env.log, env.e, env.ctx
	if !c.IsSet("log-level") {
		// People watch the progress line: per-DB logs only when asked for.
		log = log.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	}
	e.SetAtHeadCache(oneShotCache)
	softMemoryLimit()
	runID := c.String("run-id")
	if runID == "" {
		runID = fleet.NewRunID(time.Now())
	}
	pp := &progressPrinter{W: c.App.ErrWriter, TTY: isTerminal(c.App.ErrWriter), Interval: 5 * time.Second}
	every := time.Second
	if pp.TTY {
		every = 200 * time.Millisecond
	}
	progress := &runProgress{}
	stopMetrics, err := serveRunMetrics(c, runID, progress)
	if err != nil {
		return err
	}
	defer stopMetrics()
	fmt.Fprintf(c.App.ErrWriter, "run %s: migrating %s (%s) to version %d with %d workers\n", runID, root, c.String("pattern"), e.Head(), c.Int("workers"))
	rep, err := local.Run(ctx, local.Options{
		Engine: schema.Verifier{Engine: e}, Root: root, Pattern: c.String("pattern"), RunID: runID, Workers: c.Int("workers"),
		Settings: settings(c), Backup: backupOptions(c), NoBackup: c.Bool("no-backup"), Verify: c.Bool("verify"), Adopt: c.Bool("adopt"), Backoff: c.Duration("backoff"),
		ReportAtHead: !c.Bool("visit-all"), StreamReport: true,
		Canary: canary, CanaryTenants: canaryTenants, MaxFailures: maxFailures,
		OnHalt: func(reason string) {
			pp.Done()
			fmt.Fprintf(c.App.ErrWriter, "shoal: run %s halted: %s; the tenants not migrated are reported skipped (fix the migration and run again: a new run picks up everything behind)\n", runID, reason)
		},
		Logger: log, ProgressEvery: every,
		Progress: func(t *fleet.Tracker) {
			progress.set(t)
			pp.Show(t.Progress(time.Now()), time.Now())
		},
	})
	pp.Done()
	if err != nil && rep == nil {
		return failure(err, "run %s: %v", runID, err)
	}
	if err != nil {
		// The summary of what happened, then the one line: exit 1.
		_ = finishReport(c, rep, c.String("report"))
		return failure(err, "run %s stopped early: %v", runID, err)
	}
	if rep.Summary.Total == 0 && !c.Bool("allow-empty") {
		return emptyFleet(c, root)
	}
	return finishReport(c, rep, c.String("report"))
}

// finishReport prints a finished report's summary, writes it and returns
// the exit error.
// The summary is printed even when the report cannot be written.
func finishReport(c *cli.Context, rep *fleet.Report, reportPath string) error {
	printSummary(c.App.Writer, rep)
	if reportPath != "" {
		if err := fleet.WriteReport(reportPath, rep); err != nil {
			if !rep.OK() {
				reportFailures(c, rep)
			}
			return failure(err, "%v (the summary above is the run's outcome)", err)
		}
		fmt.Fprintf(c.App.Writer, "report written to %s\n", reportPath)
	}
	if !rep.OK() {
		reportFailures(c, rep)
		return errSilent
	}
	return nil
}
