package main

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
)

// fleetEnv is what a fleet command works in, built once by newFleetEnv in
// the order every fleet command needs it: the logger, the engine, the
// signal context, the NATS connection, the provisioning of the streams and
// of --node's consumers. Close releases it in reverse. The command checks
// its flags before (usage errors come before anything is opened).
type fleetEnv struct {
	log *zap.Logger
	e   *engine.Engine      // nil unless envSpec.engine
	ctx context.Context     // cancelled by SIGINT/SIGTERM or a NATS permission denial
	nc  *nats.Conn          // nil unless envSpec.conn
	js  jetstream.JetStream // nil unless envSpec.conn
	// names are the NATS names of the flags (--jobs-stream...).
	names   fleet.Names
	closers []func()
}

// envSpec says what of the environment a command needs.
type envSpec struct {
	engine bool
	// conn names the NATS connection ("" for none).
	conn string
	// natsOptions are extra connection options (given the logger).
	natsOptions func(log *zap.Logger) []nats.Option
	// provision creates the streams when missing and --node's consumers
	// (keeping the settings of existing ones: the workers' --ack-wait).
	provision bool
}

func newFleetEnv(c *cli.Context, spec envSpec) (*fleetEnv, error) {
	env := &fleetEnv{names: names(c)}
	if err := env.open(c, spec); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

func (env *fleetEnv) open(c *cli.Context, spec envSpec) (err error) {
	if env.log, err = newLogger(c); err != nil {
		return err
	}
	env.closers = append(env.closers, func() { _ = env.log.Sync() })
	if spec.engine {
		if env.e, err = openEngine(c); err != nil {
			return err
		}
	}
	ctx, stop := signalContext(c)
	env.ctx = ctx
	env.closers = append(env.closers, stop)
	if spec.conn == "" {
		return nil
	}
	var opts []nats.Option
	if spec.natsOptions != nil {
		opts = spec.natsOptions(env.log)
	}
	if env.nc, env.js, err = connectNATS(c, ctx, spec.conn, opts...); err != nil {
		return err
	}
	env.closers = append(env.closers, env.nc.Close)
	if spec.provision {
		s := fleet.Settings{Names: env.names}
		if err := fleet.ProvisionStreams(ctx, env.js, s); err != nil {
			return err
		}
		if _, _, err := fleet.EnsureConsumers(ctx, env.js, s, c.String("node")); err != nil {
			return err
		}
	}
	return nil
}

// Close releases what newFleetEnv opened, last first.
func (env *fleetEnv) Close() {
	for i := len(env.closers) - 1; i >= 0; i-- {
		env.closers[i]()
	}
	env.closers = nil
}
