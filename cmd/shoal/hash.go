package main

import (
	"path/filepath"

	"github.com/shoal-dev/shoal/engine"
	"github.com/urfave/cli/v2"
)

func hashCommand() *cli.Command {
	return &cli.Command{
		Name:      "hash",
		Usage:     "rewrite the sum file (shoal.sum) of the migrations directory",
		UsageText: "shoal hash [--dir DIR]",
		Description: "shoal.sum lists every migration file with its checksum and a total line. Commit it\n" +
			"with the migrations: two branches that each add a migration then conflict in git on\n" +
			"it instead of colliding at deploy. Run after editing a migration that is not applied\n" +
			"anywhere yet; `shoal new` and `shoal renumber` rewrite it for you.",
		Flags: []cli.Flag{dirFlag(),
			&cli.BoolFlag{Name: "baseline", Usage: "also record the lint baseline at the newest migration: shoal check then reports findings in migrations up to it as history"},
			&cli.Int64Flag{Name: "baseline-at", Usage: "record the lint baseline at this version instead of the newest"}},
		Action: hashAction,
	}
}

func hashAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("shoal hash takes no arguments, got %q", c.Args().First())
	}
	dir := diskDir(c)
	if _, err := engine.OpenDir(dir); err != nil {
		return err
	}
	changed, err := writeSumWithBaseline(c, dir)
	if err != nil {
		return failure(err, "cannot write %s: %v", filepath.Join(dir, engine.SumFile), err)
	}
	state := "unchanged"
	if changed {
		state = "written"
	}
	printf(c, "%s: %s\n", filepath.Join(dir, engine.SumFile), state)
	return nil
}
