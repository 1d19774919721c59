package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/schema"
	"github.com/shoal-dev/shoal/worker"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
)

func backupFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "backup-dir", Usage: "directory for the backups taken before migrating (default: beside each DB)"},
		&cli.StringFlag{Name: "backup-root", Usage: "with --backup-dir: mirror DB paths relative to this directory under --backup-dir"},
		&cli.IntFlag{Name: "keep", Value: DefaultKeep, Usage: "keep the newest N backups per DB (0: all)"},
		&cli.DurationFlag{Name: "keep-for", Usage: "also delete a DB's backups older than this, e.g. 720h (0: no age limit; the newest is always kept)"},
		&cli.BoolFlag{Name: "no-backup", Usage: "do not back up DBs before migrating them"},
		&cli.BoolFlag{Name: "verify", Usage: "after migrating, compare each DB's schema with what its version should have; differences are the outcome drifted"},
	}
}

// DefaultKeep is how many backups per DB fleet workers keep by default:
// every deploy that migrates adds one per DB, and the oldest go.
const DefaultKeep = 5

func backupOptions(c *cli.Context) engine.BackupOptions {
	return engine.BackupOptions{Dir: c.String("backup-dir"), Root: c.String("backup-root"), Keep: c.Int("keep"), KeepFor: c.Duration("keep-for")}
}

func workCommand() *cli.Command {
	return &cli.Command{
		Name:  "work",
		Usage: "pull migration jobs from NATS JetStream and migrate the DBs, N at a time",
		Description: "Takes jobs of --node (on-demand jobs from `shoal enqueue` first), backs up each DB when\n" +
			"something is pending, migrates it, publishes the result on shoal.results.<run_id>, then\n" +
			"acks. Failed jobs are retried with backoff up to --max-deliver attempts; refusals are\n" +
			"reported at once. SIGTERM/SIGINT: stop pulling, finish in-flight jobs, exit 0.\n" +
			"--root (required) confines the worker: a job names its tenant relative to it, and a job\n" +
			"whose DB is not a regular file beneath it, reached through no symlink, ends `rejected`\n" +
			"without anything being opened, created or changed.\n\n" +
			"Example: shoal work --root /srv/tenants --concurrency 8 --backup-dir /backups --backup-root /srv/tenants --listen :9090",
		Flags: append(append(append([]cli.Flag{
			workRootFlag(), dirFlag(), natsFlag(), nodeFlag(), busyTimeoutFlag(), scriptTimeoutFlag(),
			&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "DBs migrated at once"},
			&cli.StringFlag{Name: "name", Usage: "worker name in results (default hostname:pid)", EnvVars: []string{"SHOAL_WORKER_NAME"}},
			&cli.DurationFlag{Name: "backoff", Value: 5 * time.Second, Usage: "delay before retrying a failed job; doubles per attempt (max 5m)"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, Usage: "on SIGTERM, how long in-flight jobs may finish before they are given back"},
			&cli.StringFlag{Name: "listen", Usage: "serve /healthz, /readyz and /metrics (Prometheus) on this address, e.g. :9090"},
		}, backupFlags()...), consumerFlags()...), nameFlags()...),
		Action: workAction,
	}
}

// workRootFlag is --root for `shoal work`: required (jobs are confined to it).
func workRootFlag() cli.Flag {
	return &cli.StringFlag{Name: "root", Usage: "tenant root (required): jobs name tenants relative to it and are confined to it", EnvVars: []string{"SHOAL_ROOT"}}
}

func workAction(c *cli.Context) error {
	root := c.String("root")
	if root == "" {
		return usageError("missing --root (or SHOAL_ROOT): the directory holding the tenant DBs; a worker only migrates files beneath it (e.g. shoal work --root /srv/tenants)")
	}
	if err := checkSettings(c); err != nil {
		return err
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return failure(err, "--root %s: %v (the tenant root must be an existing directory)", root, err)
	}
	if c.Int("concurrency") < 1 {
		return usageError("--concurrency must be 1 or more")
	}
	// The worker provisions its consumers itself (w.Provision), with its
	// --ack-wait and --max-deliver.
	env, err := newFleetEnv(c, envSpec{engine: true, conn: "shoal work", natsOptions: func(log *zap.Logger) []nats.Option {
		return []nats.Option{
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("disconnected from NATS", zap.Error(err))
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", zap.String("url", fleet.ConnectedURL(nc))) }),
		}
	}})
	if err != nil {
		return err
	}
	defer env.Close()
	log, e, ctx, nc, js := env.log, env.e, env.ctx, env.nc, env.js
	w, err := worker.New(nc, js, worker.Options{
		Engine: schema.Verifier{Engine: e}, Root: root, Node: c.String("node"), Concurrency: c.Int("concurrency"), Name: c.String("name"),
		Settings: settings(c), Backoff: c.Duration("backoff"), Backup: backupOptions(c), NoBackup: c.Bool("no-backup"), Verify: c.Bool("verify"),
		ShutdownTimeout: c.Duration("shutdown-timeout"), Logger: log,
	})
	if err != nil {
		return usageError("%v", err)
	}
	if addr := c.String("listen"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return failure(err, "cannot listen on %s: %v", addr, err)
		}
		srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", zap.Error(err))
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		log.Info("serving /healthz, /readyz and /metrics", zap.String("addr", ln.Addr().String()))
	}
	if err := w.Provision(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := w.Run(ctx); err != nil {
		return err
	}
	fmt.Fprintln(c.App.ErrWriter, "shoal work: stopped")
	return nil
}
