package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/producer"
	"github.com/shoal-dev/shoal/tenants"
	"github.com/urfave/cli/v2"
)

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:  "enqueue",
		Usage: "migrate one tenant DB now: a high-priority job taken before bulk work",
		Description: "Publishes one job on shoal.jobs.<node>.high; workers take these before bulk jobs.\n" +
			"--root is required: the tenant id is --db relative to it, and --db must be a regular file\n" +
			"beneath it reached through no symlink (workers check the same). --wait prints\n" +
			"the tenant's result and exits 0 for migrated/current, 1 otherwise.\n\n" +
			"Example: shoal enqueue --root /srv/tenants --db /srv/tenants/acme/app.db --wait",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "db", Usage: "tenant DB path", EnvVars: []string{"SHOAL_DB"}},
			rootFlag(), dirFlag(), natsFlag(), nodeFlag(),
			runIDFlag("run id (default: enqueue-<time>); an existing run's id adds the result to that run"),
			&cli.BoolFlag{Name: "wait", Usage: "wait for the result and exit from its outcome"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "with --wait: give up after this long"},
			&cli.BoolFlag{Name: "json", Usage: "with --wait: print the result as JSON"},
		}, nameFlags()...),
		Action: enqueueAction,
	}
}

func enqueueAction(c *cli.Context) error {
	db, err := requireString(c, "db", "SHOAL_DB")
	if err != nil {
		return err
	}
	if err := checkSettings(c); err != nil {
		return err
	}
	// The job names the tenant relative to the root, as every job does;
	// the workers resolve it beneath their own --root. The same rule is
	// checked here first, so a job that workers would reject is never sent.
	root := c.String("root")
	if root == "" {
		return usageError("missing --root (or SHOAL_ROOT): the tenant root; --db must be a file beneath it (jobs name tenants relative to it)")
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return usageError("--root %s: %v", root, err)
	}
	abs := db
	if a, err := filepath.Abs(db); err == nil {
		abs = a
	}
	tenant, err := tenants.TenantFromPath(absRoot, abs)
	if err != nil {
		return usageError("--db %s is not beneath --root %s: a tenant is a path relative to the root", db, root)
	}
	if _, err := tenants.ResolveTenant(absRoot, tenant); err != nil {
		return failure(err, "cannot enqueue %s: %v", tenant, err)
	}
	runID := c.String("run-id")
	if runID == "" {
		runID = "enqueue-" + strings.TrimPrefix(fleet.NewRunID(time.Now()), "run-")
	}
	// Target: the head of --dir when given, else 0 (the worker's head).
	env, err := newFleetEnv(c, envSpec{engine: c.String("dir") != "", conn: "shoal enqueue", provision: true})
	if err != nil {
		return err
	}
	defer env.Close()
	ctx, js := env.ctx, env.js
	s := fleet.Settings{Names: env.names}
	var target int64
	if env.e != nil {
		target = env.e.Head()
	}
	requested := time.Now().UTC()
	job := fleet.Job{RunID: runID, Tenant: tenant, Path: abs, Target: target, RequestedAt: requested, Priority: fleet.PriorityHigh}
	if err := producer.Enqueue(ctx, js, s.Names, c.String("node"), job); err != nil {
		return failure(err, "cannot enqueue %s: %v", tenant, err)
	}
	if !c.Bool("wait") {
		fmt.Fprintf(c.App.ErrWriter, "enqueued %s (run %s)\n", tenant, runID)
		fmt.Fprintln(c.App.Writer, runID)
		return nil
	}
	got, err := awaitResult(c, env, runID, tenant, requested)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		printJSON(c, got)
	} else {
		rep := &fleet.Report{RunID: runID, Databases: []fleet.Result{*got}}
		printResults(c.App.Writer, rep)
	}
	if !fleet.AtHead(got.Outcome) {
		msg := got.Outcome
		if got.Error != nil {
			msg += ": " + *got.Error
		}
		return failure(nil, "%s: %s", tenant, msg)
	}
	return nil
}

// awaitResult follows the run's results until the one produced for this
// request of tenant arrives (not an earlier one of the run), or --timeout.
func awaitResult(c *cli.Context, env *fleetEnv, runID, tenant string, requested time.Time) (*fleet.Result, error) {
	ctx, js, s := env.ctx, env.js, fleet.Settings{Names: env.names}
	wctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
	defer cancel()
	t := fleet.NewTracker(runID, requested)
	var got *fleet.Result
	done := make(chan struct{})
	fctx, fcancel := context.WithCancel(wctx)
	defer fcancel()
	go func() {
		defer close(done)
		_ = fleet.Follow(fctx, js, s.Names, runID, t, fleet.FollowOptions{Follow: true, NoManifest: true,
			OnResult: func(r fleet.Result) {
				// Only a result produced for this request (not an earlier one of the run).
				if r.Tenant == tenant && !r.At.Before(requested.Add(-time.Second)) && got == nil {
					rr := r
					got = &rr
					fcancel()
				}
			}})
	}()
	<-done
	if got == nil {
		return nil, failure(wctx.Err(), "no result for %s within %s (run %s): are workers of node %q running? `shoal results --run-id %s --follow` keeps watching",
			tenant, c.Duration("timeout"), runID, c.String("node"), runID)
	}
	return got, nil
}
