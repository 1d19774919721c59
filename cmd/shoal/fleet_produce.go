package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/producer"
	"github.com/urfave/cli/v2"
)

func init() {
	extraCommands = append(extraCommands, produceCommand())
}

func produceCommand() *cli.Command {
	return &cli.Command{
		Name:  "produce",
		Usage: "publish one migration job per tenant DB under --root to NATS JetStream",
		Description: "Walks --root (streaming) for files matching --pattern and publishes one job per DB on\n" +
			"shoal.jobs.<node>, with Nats-Msg-Id = run id + tenant (publishing the same run again adds\n" +
			"nothing). --only-behind publishes only DBs not at head (the straggler re-check). --wait\n" +
			"follows the run's results, shows progress and exits 0 only if every DB ended at head.\n\n" +
			"Example: shoal produce --root /srv/tenants --run-id release-42 --wait --report run.json",
		Flags: append([]cli.Flag{
			rootFlag(), patternFlag(), dirFlag(), natsFlag(), nodeFlag(),
			runIDFlag("run id (default: run-<time>); re-using one within the dedup window adds no jobs"),
			&cli.BoolFlag{Name: "only-behind", Usage: "publish only DBs whose version is not the head"},
			&cli.BoolFlag{Name: "wait", Usage: "follow the results until every DB reported; exit 1 unless all are at head"},
			&cli.StringFlag{Name: "report", Usage: "with --wait: write the run's report (JSON) to this file"},
			&cli.DurationFlag{Name: "timeout", Usage: "with --wait: give up waiting after this long (0: no limit)"},
			&cli.IntFlag{Name: "window", Value: 256, Usage: "publishes awaiting the server's ack at once"},
		}, nameFlags()...),
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
	runID := c.String("run-id")
	if runID == "" {
		runID = fleet.NewRunID(time.Now())
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	defer log.Sync()
	e, err := openEngine(c)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(c)
	defer stop()
	nc, js, err := connectNATS(c, ctx, "shoal produce "+runID)
	if err != nil {
		return err
	}
	defer nc.Close()
	s := fleet.Settings{Names: names(c)}
	if err := fleet.ProvisionStreams(ctx, js, s); err != nil {
		return failure(err, "%v", err)
	}
	if _, _, err := fleet.EnsureConsumers(ctx, js, s, c.String("node")); err != nil {
		return failure(err, "%v", err)
	}

	start := time.Now()
	t := fleet.NewTracker(runID, start)
	waitCtx := ctx
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	followDone := make(chan error, 1)
	if c.Bool("wait") {
		go func() { followDone <- waitRun(waitCtx, c, js, s.Names, runID, t, true) }()
	}
	fmt.Fprintf(c.App.ErrWriter, "run %s: publishing jobs for %s (%s)\n", runID, root, c.String("pattern"))
	st, err := producer.Produce(ctx, js, producer.Options{
		Root: root, Pattern: c.String("pattern"), RunID: runID, Node: c.String("node"),
		OnlyBehind: c.Bool("only-behind"), Engine: e, Names: s.Names, Window: c.Int("window"), Logger: log,
	})
	if err != nil {
		return failure(err, "run %s: %v (re-run with the same --run-id: jobs already published are not duplicated)", runID, err)
	}
	fmt.Fprintf(c.App.ErrWriter, "run %s: %d jobs (%d new, %d already published", runID, st.Jobs, st.Published, st.Duplicates)
	if c.Bool("only-behind") {
		fmt.Fprintf(c.App.ErrWriter, ", %d skipped at head", st.Skipped)
	}
	fmt.Fprintln(c.App.ErrWriter, ")")
	if !c.Bool("wait") {
		fmt.Fprintln(c.App.Writer, runID)
		return nil
	}
	t.SetTotal(st.Jobs)
	if err := <-followDone; err != nil && waitCtx.Err() == nil {
		return failure(err, "run %s: reading results: %v", runID, err)
	}
	return finishRun(c, t, c.String("report"))
}
