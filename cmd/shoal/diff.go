package main

import (
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/schema"
	"github.com/urfave/cli/v2"
)

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "compare a live DB's schema with the schema its recorded version should have",
		UsageText: "shoal diff --db PATH [--dir DIR] [--json]",
		Description: "Builds a scratch DB at the version the DB's history records and compares the two\n" +
			"schemas object by object (canonical form). Exit 1 on drift: someone changed this file\n" +
			"by hand. The DB is only read.",
		Flags:  []cli.Flag{dbFlag(), dirFlag(), jsonFlag(`print {"path", "version", "drift", "diffs": [{"type", "name", "change", "want", "got"}]}`)},
		Action: diffAction,
	}
}

func diffAction(c *cli.Context) error {
	path, e, err := dbAndEngine(c)
	if err != nil {
		return err
	}
	diffs, err := schema.Drift(c.Context, e, path)
	if err != nil {
		return err
	}
	s, err := e.Status(c.Context, path)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := printJSON(c, map[string]any{"path": path, "version": s.Version, "drift": len(diffs) > 0, "diffs": diffs}); err != nil {
			return err
		}
	} else if len(diffs) == 0 {
		printf(c, "%s: schema matches version %d\n", path, s.Version)
	} else {
		printf(c, "%s: schema differs from version %d:\n", path, s.Version)
		printDiffs(c, diffs, "version "+strconv.FormatInt(s.Version, 10), "database")
	}
	if len(diffs) > 0 {
		parts := make([]string, 0, len(diffs))
		for _, d := range diffs {
			parts = append(parts, d.Change+" "+d.Type+" "+d.Name)
		}
		return failure(nil, "%s has drifted from version %d: %s (fix the DB by hand, or restore it from a backup)", path, s.Version, strings.Join(parts, ", "))
	}
	return nil
}
