package main

import (
	"github.com/shoal-dev/shoal/engine"
	"github.com/urfave/cli/v2"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "take a consistent, checked backup of one database",
		UsageText: "shoal backup --db PATH [--backup-dir DIR] [--root DIR] [--keep N] [--json]",
		Description: "Copies the database through SQLite's online backup API (rows committed in a -wal\n" +
			"file included; writers in WAL mode are not blocked), checks the copy with\n" +
			"PRAGMA quick_check, fsyncs it and prints its path: <db>.<UTC timestamp>.bak beside\n" +
			"the DB, flat in --backup-dir, or mirrored under --backup-dir relative to --root.\n" +
			"The backup directory must exist. Names never collide; nothing is left behind on failure.",
		Flags: []cli.Flag{
			dbFlag(),
			&cli.StringFlag{Name: "backup-dir", Usage: "existing directory for backups (default: beside the DB)"},
			&cli.StringFlag{Name: "root", Usage: "with --backup-dir: mirror the DB's path relative to this root", EnvVars: []string{"SHOAL_ROOT"}},
			&cli.IntFlag{Name: "keep", Usage: "keep only the newest N backups of this DB (0: all)"},
			jsonFlag(`print {"backup": PATH}`),
		},
		Action:      backupAction,
		Subcommands: []*cli.Command{backupPruneCommand()},
	}
}

func backupPruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "delete old backups of every DB under a backup directory",
		UsageText: "shoal backup prune --dir DIR [--keep N] [--keep-for D] [--dry-run] [--json]",
		Description: "Walks DIR (a --backup-dir, or a tenant root when backups sit beside the DBs) and, for\n" +
			"each DB, deletes the backups beyond the newest --keep and those older than --keep-for\n" +
			"(by the UTC time in their names). The newest backup of a DB is never deleted. Only\n" +
			"shoal's backup names (<db>.<timestamp>[-N].bak, regular files) are touched; symbolic\n" +
			"links are not followed. --dry-run lists what would go.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "backup directory tree to prune"},
			&cli.IntFlag{Name: "keep", Value: DefaultKeep, Usage: "keep the newest N backups of each DB (0: no count limit)"},
			&cli.DurationFlag{Name: "keep-for", Usage: "delete backups older than this, e.g. 720h (0: no age limit)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be deleted, delete nothing"},
			jsonFlag(`print {"databases", "backups", "bytes", "deleted": [PATH...], "deleted_bytes", "dry_run"}`),
		},
		Action: backupPruneAction,
	}
}

func backupPruneAction(c *cli.Context) error {
	dir := c.String("dir")
	if dir == "" {
		return usageError("missing --dir: the backup directory to prune")
	}
	if c.NArg() > 0 {
		return usageError("backup prune takes no arguments, got %q", c.Args().First())
	}
	if c.Int("keep") < 0 {
		return usageError("--keep must be 0 or more, got %d", c.Int("keep"))
	}
	if c.Duration("keep-for") < 0 {
		return usageError("--keep-for must be 0 or more, got %s", c.Duration("keep-for"))
	}
	if c.Int("keep") == 0 && c.Duration("keep-for") == 0 {
		return usageError("--keep 0 and no --keep-for would keep everything: give a count or an age")
	}
	st, err := engine.PruneTree(dir, engine.PruneOptions{Keep: c.Int("keep"), KeepFor: c.Duration("keep-for"), DryRun: c.Bool("dry-run")})
	if st == nil {
		return err
	}
	if c.Bool("json") {
		if perr := printJSON(c, struct {
			*engine.PruneStats
			DryRun bool `json:"dry_run"`
		}{st, c.Bool("dry-run")}); perr != nil {
			return perr
		}
	} else {
		verb := "deleted"
		if c.Bool("dry-run") {
			verb = "would delete"
			for _, p := range st.Deleted {
				printf(c, "%s\n", p)
			}
		}
		printf(c, "%d backups of %d databases (%s); %s %d (%s)\n", st.Backups, st.Databases, humanBytes(st.Bytes), verb, len(st.Deleted), humanBytes(st.DeletedBytes))
	}
	if err != nil {
		return failure(err, "some backups could not be pruned: %v", err)
	}
	return nil
}

func backupAction(c *cli.Context) error {
	path, err := requireString(c, "db", "SHOAL_DB")
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		return usageError("backup takes no arguments, got %q (use --db PATH)", c.Args().First())
	}
	if c.Int("keep") < 0 {
		return usageError("--keep must be 0 or more, got %d", c.Int("keep"))
	}
	o := engine.BackupOptions{Dir: c.String("backup-dir"), Root: c.String("root"), Keep: c.Int("keep")}
	if o.Dir == "" {
		o.Root = "" // --root only means something with --backup-dir
	}
	bak, err := engine.Backup(c.Context, path, o)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, map[string]string{"backup": bak})
	}
	printf(c, "%s\n", bak)
	return nil
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "put a backup in place of one database, keeping the replaced file",
		UsageText: "shoal restore --db PATH [--backup-dir DIR] [--root DIR] [--json] BACKUP",
		Description: "Refuses, leaving the DB untouched, when BACKUP is not a SQLite database or fails\n" +
			"PRAGMA quick_check, when a shoal migrator holds the DB's lock, when another connection\n" +
			"holds its write lock, or when another process has it open in WAL mode. Otherwise the\n" +
			"current DB is backed up (like `shoal backup`), BACKUP is copied beside it, checked,\n" +
			"fsynced and renamed over it. Stop applications using the DB first: a process that\n" +
			"keeps a rollback-journal DB open without a transaction cannot be detected.",
		Flags: []cli.Flag{
			dbFlag(),
			&cli.StringFlag{Name: "backup-dir", Usage: "existing directory where the replaced DB is kept (default: beside the DB)"},
			&cli.StringFlag{Name: "root", Usage: "with --backup-dir: mirror the DB's path relative to this root", EnvVars: []string{"SHOAL_ROOT"}},
			&cli.DurationFlag{Name: "busy-timeout", Value: engine.DefaultRestoreBusyTimeout, Usage: "how long to wait for another writer before refusing"},
			jsonFlag(`print {"db": PATH, "restored_from": BACKUP, "replaced": KEPT}`),
		},
		Action: restoreAction,
	}
}

func restoreAction(c *cli.Context) error {
	path, err := requireString(c, "db", "SHOAL_DB")
	if err != nil {
		return err
	}
	switch {
	case c.NArg() == 0:
		return usageError("missing BACKUP: shoal restore --db PATH BACKUP")
	case c.NArg() > 1:
		return usageError("restore takes one BACKUP, got %d arguments (flags go before BACKUP)", c.NArg())
	}
	backup := c.Args().First()
	o := engine.RestoreOptions{
		Backup:      engine.BackupOptions{Dir: c.String("backup-dir"), Root: c.String("root")},
		BusyTimeout: c.Duration("busy-timeout"),
	}
	if o.Backup.Dir == "" {
		o.Backup.Root = ""
	}
	replaced, err := engine.Restore(c.Context, path, backup, o)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		var kept any
		if replaced != "" {
			kept = replaced
		}
		return printJSON(c, map[string]any{"db": path, "restored_from": backup, "replaced": kept})
	}
	if replaced == "" {
		printf(c, "restored %s from %s (there was no database to replace)\n", path, backup)
	} else {
		printf(c, "restored %s from %s; the replaced database was kept as %s\n", path, backup, replaced)
	}
	return nil
}
