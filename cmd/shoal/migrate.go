package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/urfave/cli/v2"
	"go.uber.org/zap"
)

// dbFlag names one DB file.
func dbFlag() cli.Flag {
	return &cli.StringFlag{Name: "db", Usage: "path of the SQLite database file", EnvVars: []string{"SHOAL_DB"}}
}

func jsonFlag(usage string) cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: usage}
}

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:      "migrate",
		Usage:     "apply pending migrations to one database",
		UsageText: "shoal migrate --db PATH [--dir DIR] [--to N] [--backup] [--dry-run] [--json]",
		Description: "Applies every pending migration in one BEGIN IMMEDIATE transaction (scripts and\n" +
			"transaction:false steps run alone, on a private copy). Foreign keys are off during the\n" +
			"run and checked before COMMIT. A missing file is created; a DB that is not shoal's,\n" +
			"ahead of the migrations, edited or corrupt is refused and left byte-identical.\n" +
			"Any number of migrators may run on one file at once: each migration applies once.",
		Flags: []cli.Flag{
			dbFlag(), dirFlag(),
			&cli.Int64Flag{Name: "to", Usage: "stop at version N; 0 is the same as not giving it: head (to go back to version 0, use shoal down --to 0)", DefaultText: "head"},
			&cli.BoolFlag{Name: "backup", Usage: "take a consistent backup first (only when something is pending)"},
			&cli.StringFlag{Name: "backup-dir", Usage: "where backups go (default: beside the DB)"},
			&cli.StringFlag{Name: "root", Usage: "with --backup-dir: mirror the DB's path relative to this root", EnvVars: []string{"SHOAL_ROOT"}},
			&cli.IntFlag{Name: "keep", Usage: "keep only the last N backups of this DB (0: all)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would run and change nothing"},
			&cli.BoolFlag{Name: "allow-changed", Usage: "accept applied migrations whose file changed"},
			&cli.BoolFlag{Name: "allow-out-of-order", Usage: "apply pending migrations older than the newest applied one"},
			&cli.BoolFlag{Name: "per-migration", Usage: "commit each migration in its own transaction (default: one per run)"},
			busyTimeoutFlag(), scriptTimeoutFlag(),
			jsonFlag("print the result as one JSON object"),
		},
		Action: migrateAction,
	}
}

func migrateAction(c *cli.Context) error {
	path, err := requireString(c, "db", "SHOAL_DB")
	if err != nil {
		return err
	}
	if c.Int64("to") < 0 {
		return usageError("--to must be 0 or more, got %d", c.Int64("to"))
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	e, err := openEngine(c)
	if err != nil {
		return err
	}
	o := engine.MigrateOptions{
		To:              c.Int64("to"),
		DryRun:          c.Bool("dry-run"),
		AllowChanged:    c.Bool("allow-changed"),
		AllowOutOfOrder: c.Bool("allow-out-of-order"),
		PerMigration:    c.Bool("per-migration"),
	}
	if c.Bool("backup") || c.IsSet("backup-dir") {
		o.Backup = &engine.BackupOptions{Dir: c.String("backup-dir"), Root: c.String("root"), Keep: c.Int("keep")}
	}
	start := time.Now()
	res, merr := e.Migrate(c.Context, path, o)
	took := time.Since(start)
	r := resultFor(path, res, merr, took)
	// A failure is reported once, as the first stderr line (and in --json);
	// success is logged for the record.
	if merr == nil && res.DryRun {
		// What would happen: the version it would reach and what it would apply.
		log.Info("migrate", zap.String("db", path), zap.Bool("dry_run", true), zap.Int64("from", res.From),
			zap.Int64("would_reach", res.To), zap.Int("would_apply", len(res.Pending)))
	} else if merr == nil {
		log.Info("migrate", zap.String("db", path), zap.String("outcome", r.Outcome), zap.Int64("duration_ms", r.DurationMs),
			zap.Int64p("from", r.From), zap.Int64p("to", r.To), zap.Int("applied", len(r.Applied)))
	}
	if c.Bool("json") {
		if err := printJSON(c, r); err != nil {
			return err
		}
	} else if merr == nil {
		printMigrate(c, res)
	}
	if merr != nil {
		return merr
	}
	return nil
}

// printMigrate tells people what a run did.
func printMigrate(c *cli.Context, res *engine.Result) {
	switch {
	case res.DryRun && len(res.Pending) == 0:
		printf(c, "%s: at version %d, nothing to apply\n", res.Path, res.From)
	case res.DryRun:
		printf(c, "%s: at version %d, would migrate to %d, applying:\n", res.Path, res.From, res.To)
		for _, a := range res.Pending {
			printf(c, "  %s\n", a.File)
		}
	case len(res.Applied) == 0:
		printf(c, "%s: current at version %d\n", res.Path, res.To)
	default:
		names := make([]string, len(res.Applied))
		for i, a := range res.Applied {
			names[i] = fmt.Sprintf("%s (%d ms)", a.File, a.DurationMs)
		}
		printf(c, "%s: migrated from %d to %d: %s\n", res.Path, res.From, res.To, strings.Join(names, ", "))
		if res.Backup != "" {
			printf(c, "%s: backup %s\n", res.Path, res.Backup)
		}
	}
}

// resultFor builds the contract's result object for one DB migrated from
// the CLI: no run id, the file name as tenant, attempt 1.
func resultFor(path string, res *engine.Result, err error, took time.Duration) fleet.Result {
	host, _ := os.Hostname()
	job := fleet.Job{Tenant: filepath.Base(path), Path: path}
	return fleet.NewResult(job, res, err, 1, fmt.Sprintf("%s/%d", host, os.Getpid()), took)
}
