package main

import (
	"errors"
	"strconv"

	"github.com/shoal-dev/shoal/engine"
	"github.com/urfave/cli/v2"
)

func downCommand() *cli.Command {
	return &cli.Command{
		Name:      "down",
		Usage:     "undo applied migrations, newest first, down to version N",
		UsageText: "shoal down --db PATH --to N [--dir DIR] [--json]",
		Description: "Runs the -- migrate:down sections newest first with the same lock, transaction\n" +
			"and foreign-key handling as going up. Refuses before touching anything if a\n" +
			"migration on the way has no down part. To put back data as well as schema,\n" +
			"restore a backup instead (`shoal restore`).",
		Flags: []cli.Flag{dbFlag(), dirFlag(),
			&cli.Int64Flag{Name: "to", Usage: "version to go down to (0: undo everything)", Required: true},
			busyTimeoutFlag(), jsonFlag("print the result as JSON")},
		Action: func(c *cli.Context) error {
			path, e, err := dbAndEngine(c)
			if err != nil {
				return err
			}
			res, err := e.Down(c.Context, path, c.Int64("to"))
			if err != nil {
				return err
			}
			return printDown(c, res)
		},
	}
}

func printDown(c *cli.Context, res *engine.Result) error {
	if c.Bool("json") {
		return printJSON(c, res)
	}
	if len(res.Applied) == 0 {
		printf(c, "%s: at version %d, nothing to undo\n", res.Path, res.To)
		return nil
	}
	for _, a := range res.Applied {
		printf(c, "%s: undid %s (%d ms)\n", res.Path, a.File, a.DurationMs)
	}
	printf(c, "%s: now at version %d\n", res.Path, res.To)
	return nil
}

func redoCommand() *cli.Command {
	return &cli.Command{
		Name:      "redo",
		Usage:     "undo the newest applied migration and apply it again (for working on it)",
		UsageText: "shoal redo --db PATH [--dir DIR]",
		Flags:     []cli.Flag{dbFlag(), dirFlag(), busyTimeoutFlag()},
		Action: func(c *cli.Context) error {
			path, e, err := dbAndEngine(c)
			if err != nil {
				return err
			}
			res, err := e.Redo(c.Context, path)
			if err != nil {
				return err
			}
			printf(c, "%s: redone, at version %d\n", res.Path, res.To)
			return nil
		},
	}
}

func enrollCommand() *cli.Command {
	return &cli.Command{
		Name:      "enroll",
		Usage:     "adopt a database created before shoal, after checking its schema",
		UsageText: "shoal enroll --db PATH [--version N | --from TOOL [--map FILE]] [--dir DIR]",
		Description: "Builds a scratch DB from migrations 1..N and compares schemas in canonical form\n" +
			"(objects and definitions; order and whitespace ignored). If they match, records\n" +
			"1..N as applied. Without --version, N comes from another tool's history table,\n" +
			"checked first (--from names the tool; detected otherwise: fastmigrate, golang-migrate,\n" +
			"dbmate, rails, goose, diesel, sqlx, flyway, prisma, alembic with --map), or is the\n" +
			"version whose schema matches. Otherwise prints the differences object by object.\n" +
			"The other tool's table is left as it was (docs/switching.md).",
		Flags: []cli.Flag{dbFlag(), dirFlag(),
			&cli.Int64Flag{Name: "version", Usage: "the version the DB is at (default: detect)"},
			fromFlag(), alembicMapFlag(),
			busyTimeoutFlag(), jsonFlag("print the result as JSON")},
		Action: func(c *cli.Context) error {
			path, e, err := dbAndEngine(c)
			if err != nil {
				return err
			}
			eo, err := enrollOptions(c)
			if err != nil {
				return err
			}
			en, err := e.EnrollWith(c.Context, path, eo)
			if err != nil {
				if errors.Is(err, engine.ErrEnroll) {
					return failure(err, "%v\nfix the database or pick the right --version, then enroll again", err)
				}
				return err
			}
			if c.Bool("json") {
				return printJSON(c, en)
			}
			printf(c, "%s: enrolled at version %d (from %s)\n", en.Path, en.Version, en.Source)
			return nil
		},
	}
}

func acceptCommand() *cli.Command {
	return &cli.Command{
		Name:      "accept",
		Usage:     "record the current checksum of edited, applied migrations",
		UsageText: "shoal accept --db PATH [--dir DIR] VERSION...",
		Description: "For an applied migration edited on purpose (a comment, a harmless fix): shows\n" +
			"which files differ from what was applied and records their current checksum so\n" +
			"the DB is no longer refused as `changed`.",
		Flags: []cli.Flag{dbFlag(), dirFlag(), busyTimeoutFlag()},
		Action: func(c *cli.Context) error {
			path, err := requireString(c, "db", "SHOAL_DB")
			if err != nil {
				return err
			}
			if c.NArg() == 0 {
				return usageError("accept needs at least one VERSION, e.g. `shoal accept --db t.db 3`")
			}
			var versions []int64
			for _, a := range c.Args().Slice() {
				v, err := strconv.ParseInt(a, 10, 64)
				if err != nil || v < 1 {
					return usageError("VERSION %q is not a positive number", a)
				}
				versions = append(versions, v)
			}
			e, err := openEngine(c)
			if err != nil {
				return err
			}
			acc, err := e.Accept(c.Context, path, versions)
			if err != nil {
				return err
			}
			if len(acc) == 0 {
				printf(c, "%s: those migrations match their files; nothing to accept\n", path)
			}
			for _, a := range acc {
				printf(c, "%s: accepted %s (checksum %.12s -> %.12s)\n", path, a.File, a.OldChecksum, a.NewChecksum)
			}
			return nil
		},
	}
}
