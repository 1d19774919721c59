package main

import (
	"bufio"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/urfave/cli/v2"
)

func resultsCommand() *cli.Command {
	return &cli.Command{
		Name:  "results",
		Usage: "show a run's results from the results stream",
		Description: "Reads shoal.results.<run_id>: a table for people (the latest result per DB), or with\n" +
			"--json the report object. --follow keeps reading until every DB of the run reported.\n" +
			"Exits 1 when a DB did not end at head (or, with --follow, has no result).\n\n" +
			"Example: shoal results --run-id release-42 --json > report.json",
		Flags: append([]cli.Flag{
			natsFlag(), runIDFlag("the run to show (required)"),
			&cli.BoolFlag{Name: "follow", Usage: "keep reading until every DB of the run reported"},
			&cli.BoolFlag{Name: "json", Usage: "print the report object"},
			listenFlag(),
		}, nameFlags()...),
		Action: resultsAction,
	}
}

func resultsAction(c *cli.Context) error {
	runID, err := requireString(c, "run-id", "SHOAL_RUN_ID")
	if err != nil {
		return err
	}
	if err := checkSettings(c); err != nil {
		return err
	}
	if c.String("listen") != "" && !c.Bool("follow") {
		return usageError("--listen needs --follow: it serves the progress of the run being followed")
	}
	env, err := newFleetEnv(c, envSpec{conn: "shoal results"})
	if err != nil {
		return err
	}
	defer env.Close()
	ctx, js, nm := env.ctx, env.js, env.names
	softMemoryLimit()
	t := fleet.NewTracker(runID, time.Time{})
	stopMetrics, err := serveTrackerMetrics(c, runID, t)
	if err != nil {
		return err
	}
	defer stopMetrics()
	if c.Bool("follow") {
		err = waitRun(ctx, c, js, nm, runID, t, false)
	} else {
		err = fleet.Follow(ctx, js, nm, runID, t, fleet.FollowOptions{})
	}
	if err != nil && ctx.Err() == nil {
		return failure(err, "run %s: %v", runID, err)
	}
	rep := t.StreamReport(time.Now())
	if c.Bool("json") {
		w := bufio.NewWriterSize(c.App.Writer, 256<<10)
		werr := rep.WriteJSON(w)
		if ferr := w.Flush(); werr == nil {
			werr = ferr
		}
		if werr != nil {
			return failure(werr, "run %s: cannot write the report: %v", runID, werr)
		}
	} else {
		if rep.Len() == 0 {
			printf(c, "run %s: no results (yet)\n", runID)
		} else {
			printResults(c.App.Writer, rep)
			printf(c, "\n")
			printSummary(c.App.Writer, rep)
		}
	}
	if m := t.Manifest(); m == nil && rep.Len() == 0 {
		return failure(nil, "run %s: no such run in stream %s (check --run-id)", runID, nm.ResultsStream)
	}
	if !rep.OK() {
		return errSilent
	}
	return nil
}
