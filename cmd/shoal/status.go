package main

import (
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show one database's version, pending and applied migrations",
		UsageText: "shoal status --db PATH [--dir DIR] [--json]",
		Description: "Reads the history without the write lock and never creates the file: a missing\n" +
			"file is at version 0 with everything pending. Applied migrations whose file changed\n" +
			"since are marked; exit 1 if any is, or if the DB is refused.",
		Flags:  []cli.Flag{dbFlag(), dirFlag(), jsonFlag(`print {"version", "head", "pending", "applied"}`)},
		Action: statusAction,
	}
}

func statusAction(c *cli.Context) error {
	path, e, err := dbAndEngine(c)
	if err != nil {
		return err
	}
	s, err := e.Status(c.Context, path)
	if err != nil {
		return err
	}
	var changed int
	for _, a := range s.Applied {
		if a.Changed || a.Missing {
			changed++
		}
	}
	if c.Bool("json") {
		if err := printJSON(c, s); err != nil {
			return err
		}
	} else {
		if !s.Exists {
			printf(c, "%s: the file does not exist (`shoal migrate` would create it); nothing was created\n", s.Path)
		}
		printf(c, "%s: version %d of %d (%s, %s layout)\n", s.Path, s.Version, s.Head, e.DirName(), e.Layout())
		for _, a := range s.Applied {
			mark := ""
			switch {
			case a.Missing:
				mark = "  <- no such migration file (ahead)"
			case a.Changed:
				mark = "  <- file changed since it was applied"
			}
			printf(c, "  applied  %4d %-40s %s%s\n", a.Version, a.Name, a.AppliedAt, mark)
		}
		for _, p := range s.Pending {
			printf(c, "  pending  %4d %s\n", p.Version, p.File)
		}
	}
	if changed > 0 {
		return failure(nil, "%s: %d applied migrations no longer match their files: run `shoal accept` after review, or restore the files", path, changed)
	}
	return nil
}
