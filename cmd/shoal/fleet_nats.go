package main

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/urfave/cli/v2"
)

func natsCommand() *cli.Command {
	return &cli.Command{
		Name:  "nats",
		Usage: "NATS JetStream administration",
		Subcommands: []*cli.Command{
			{
				Name:  "setup",
				Usage: "create shoal's streams and the nodes' consumers (idempotent)",
				Description: "Creates SHOAL_JOBS (work queue on shoal.jobs.>, file storage) and SHOAL_RESULTS\n" +
					"(limits retention on shoal.results.>) when missing, and creates or updates the durable\n" +
					"pull consumers of each --node (bulk and high priority). Producers and workers do the\n" +
					"same at start-up when their user may; run this to provision ahead of time, to change\n" +
					"--ack-wait/--max-deliver or the streams' --replicas. With least-privilege users (deploy/nats),\n" +
					"this is the only command that creates or changes streams: run it as the admin user.\n\n" +
					"Example: shoal nats setup --nats nats://nats:4222 --node default --node eu",
				Flags: append(append([]cli.Flag{
					natsFlag(),
					&cli.StringSliceFlag{Name: "node", Value: cli.NewStringSlice(fleet.DefaultNode), Usage: "node to create consumers for (repeatable)"},
					&cli.DurationFlag{Name: "duplicates", Value: fleet.DefaultDuplicates, Usage: "jobs stream de-duplication window (only when creating it)"},
					&cli.DurationFlag{Name: "results-max-age", Value: fleet.DefaultResultsMaxAge, Usage: "how long results are kept (only when creating the stream)"},
					&cli.IntFlag{Name: "replicas", Usage: "stream replicas: 1 on a single server, 3 for a cluster (default: 1, or 3 when connected to a cluster); changes existing streams", EnvVars: []string{"SHOAL_NATS_REPLICAS"}},
					&cli.StringFlag{Name: "placement-cluster", Usage: "place the streams in this JetStream cluster (super-clusters)"},
					&cli.StringSliceFlag{Name: "placement-tag", Usage: "place the streams on servers with this server tag (repeatable)"},
				}, consumerFlags()...), nameFlags()...),
				Action: natsSetupAction,
			},
		},
	}
}

func natsSetupAction(c *cli.Context) error {
	if err := checkSettings(c); err != nil {
		return err
	}
	for _, n := range c.StringSlice("node") {
		if err := fleet.ValidName("node", n); err != nil {
			return usageError("%v", err)
		}
	}
	if r := c.Int("replicas"); c.IsSet("replicas") && (r < 1 || r > 5) {
		return usageError("--replicas must be between 1 and 5 (JetStream's limit), got %d", r)
	}
	// Streams and consumers are set up below, with this command's settings.
	env, err := newFleetEnv(c, envSpec{conn: "shoal nats setup"})
	if err != nil {
		return err
	}
	defer env.Close()
	ctx, nc, js := env.ctx, env.nc, env.js
	s := settings(c)
	s.Duplicates = c.Duration("duplicates")
	s.ResultsMaxAge = c.Duration("results-max-age")
	s.Replicas = c.Int("replicas")
	if c.String("placement-cluster") != "" || len(c.StringSlice("placement-tag")) > 0 {
		s.Placement = &jetstream.Placement{Cluster: c.String("placement-cluster"), Tags: c.StringSlice("placement-tag")}
	}
	if err := fleet.SetupStreams(ctx, js, s); err != nil {
		return err
	}
	replicas := fleet.StreamReplicas(ctx, js, s.JobsStream)
	printf(c, "streams: %s (shoal jobs, work queue), %s (results), %d replicas\n", s.JobsStream, s.ResultsStream, replicas)
	for _, n := range c.StringSlice("node") {
		if _, _, err := fleet.ProvisionConsumers(ctx, js, s, n); err != nil {
			return err
		}
		printf(c, "node %s: consumers %s (%s) and %s (%s), ack wait %s, max deliver %d\n", n,
			s.ConsumerName(n, true), s.JobSubject(n, true), s.ConsumerName(n, false), s.JobSubject(n, false),
			c.Duration("ack-wait"), c.Int("max-deliver"))
	}
	fmt.Fprintf(c.App.ErrWriter, "connected to nats-server %s at %s\n", nc.ConnectedServerVersion(), fleet.ConnectedURL(nc))
	return nil
}
