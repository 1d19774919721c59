package main

import (
	"fmt"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/urfave/cli/v2"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "nats",
		Usage: "NATS JetStream administration",
		Subcommands: []*cli.Command{
			{
				Name:  "setup",
				Usage: "create shoal's streams and the nodes' consumers (idempotent)",
				Description: "Creates SHOAL_JOBS (work queue on shoal.jobs.>, file storage) and SHOAL_RESULTS\n" +
					"(limits retention on shoal.results.>) when missing, and creates or updates the durable\n" +
					"pull consumers of each --node (bulk and high priority). Producers and workers do the\n" +
					"same at start-up; run this to provision ahead of time or to change --ack-wait/--max-deliver.\n\n" +
					"Example: shoal nats setup --nats nats://nats:4222 --node default --node eu",
				Flags: append(append([]cli.Flag{
					natsFlag(),
					&cli.StringSliceFlag{Name: "node", Value: cli.NewStringSlice(fleet.DefaultNode), Usage: "node to create consumers for (repeatable)"},
					&cli.DurationFlag{Name: "duplicates", Value: fleet.DefaultDuplicates, Usage: "jobs stream de-duplication window (only when creating it)"},
					&cli.DurationFlag{Name: "results-max-age", Value: fleet.DefaultResultsMaxAge, Usage: "how long results are kept (only when creating the stream)"},
				}, consumerFlags()...), nameFlags()...),
				Action: natsSetupAction,
			},
		},
	})
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
	ctx, stop := signalContext(c)
	defer stop()
	nc, js, err := connectNATS(c, ctx, "shoal nats setup")
	if err != nil {
		return err
	}
	defer nc.Close()
	s := settings(c)
	s.Duplicates = c.Duration("duplicates")
	s.ResultsMaxAge = c.Duration("results-max-age")
	if err := fleet.ProvisionStreams(ctx, js, s); err != nil {
		return failure(err, "%v", err)
	}
	printf(c, "streams: %s (shoal jobs, work queue), %s (results)\n", s.JobsStream, s.ResultsStream)
	for _, n := range c.StringSlice("node") {
		if _, _, err := fleet.ProvisionConsumers(ctx, js, s, n); err != nil {
			return failure(err, "%v", err)
		}
		printf(c, "node %s: consumers %s (%s) and %s (%s), ack wait %s, max deliver %d\n", n,
			s.ConsumerName(n, true), s.JobSubject(n, true), s.ConsumerName(n, false), s.JobSubject(n, false),
			c.Duration("ack-wait"), c.Int("max-deliver"))
	}
	fmt.Fprintf(c.App.ErrWriter, "connected to nats-server %s\n", nc.ConnectedServerVersion())
	return nil
}
