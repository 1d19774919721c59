package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/schema"
	"github.com/urfave/cli/v2"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "check a migrations directory for CI: parse, apply, round trip, schema.sql, sum file, lint",
		UsageText: "shoal check [--dir DIR] [--json] [--strict] [--no-roundtrip]",
		Description: "Exit 1 on any problem. Checks that names, duplicates, sections and directives parse;\n" +
			"that every migration applies to a scratch DB (an SQL error names the file and line);\n" +
			"that migrations with down parts round-trip (up, down, up: the same schema at every\n" +
			"version); that schema.sql, if present, equals what the migrations produce; that the\n" +
			"sum file, if present, matches; and lints every .sql migration (codes SH001-SH006, see\n" +
			"docs/schema.md). Destructive changes (SH001, SH002) are warnings unless --strict;\n" +
			"silence one in a file with a `-- shoal:allow SH001` comment.",
		Flags: []cli.Flag{
			dirFlag(),
			&cli.BoolFlag{Name: "strict", Usage: "fail on lint warnings (destructive changes) too"},
			&cli.BoolFlag{Name: "no-roundtrip", Usage: "skip the up/down/up round trip"},
			&cli.Int64Flag{Name: "since", Usage: "lint baseline: findings in migrations at or before VERSION are reported as history and do not fail the check (default: the sum file's baseline line, see shoal hash --baseline)"},
			jsonFlag(`print {"ok", "migrations", "head", "problems": [...], "lint": [{"code", "severity", "file", "line", "message", "fix"}]}`),
		},
		Action: checkAction,
	}
}

func checkAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("shoal check takes no arguments, got %q", c.Args().First())
	}
	if usesEmbedded(c) {
		return failure(nil, "no migrations directory to check: no ./migrations here and no --dir or SHOAL_DIR (run it where your migrations are, or pass --dir)")
	}
	fsys, dir, embedded, err := onDisk(c)
	if err != nil {
		return err
	}
	o := schema.CheckOptions{Options: engine.Options{Dir: fsys, DirName: dir, Layout: c.String("layout")}, Strict: c.Bool("strict"), NoRoundTrip: c.Bool("no-roundtrip"), Since: c.Int64("since")}
	if !embedded {
		sp := schemaPath(dir)
		data, err := os.ReadFile(sp)
		switch {
		case err == nil:
			o.Schema, o.HasSchema, o.SchemaName = data, true, sp
		case !errors.Is(err, fs.ErrNotExist):
			return failure(err, "cannot read %s: %v", sp, err)
		}
	}
	rep, err := schema.Check(c.Context, o)
	if err != nil {
		return failure(err, "check could not run: %v", err)
	}
	if c.Bool("json") {
		if err := printJSON(c, rep); err != nil {
			return err
		}
	} else {
		printCheck(c, dir, rep)
	}
	if rep.OK {
		return nil
	}
	errs, warns := lintCounts(rep.Lint)
	first := ""
	if len(rep.Problems) > 0 {
		p := rep.Problems[0]
		first = ": " + where(p.File, p.Line) + p.Message
	} else {
		for _, f := range rep.Lint {
			if !f.History && (f.Severity == schema.SeverityError || c.Bool("strict")) {
				first = ": " + where(f.File, f.Line) + f.Code + " " + f.Message
				break
			}
		}
	}
	return failure(nil, "check of %s failed: %d problem(s), %d lint error(s), %d warning(s)%s", dir, len(rep.Problems), errs, warns, first)
}

func where(file string, line int) string {
	switch {
	case file == "":
		return ""
	case line > 0:
		return fmt.Sprintf("%s:%d: ", file, line)
	}
	return file + ": "
}

func lintCounts(ls []schema.LintFinding) (errs, warns int) {
	for _, f := range ls {
		if f.History {
			continue
		}
		if f.Severity == schema.SeverityError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

func printCheck(c *cli.Context, dir string, rep *schema.CheckReport) {
	if rep.Layout != "" {
		printf(c, "%s: %s layout, %d migrations, head %d\n", dir, rep.Layout, rep.Migrations, rep.Head)
	}
	for _, p := range rep.Problems {
		printf(c, "problem (%s): %s%s\n", p.Kind, where(p.File, p.Line), p.Message)
		if p.Kind == schema.ProblemSchema {
			printDiffs(c, p.Diffs, "migrations", "schema.sql")
		} else {
			printDiffs(c, p.Diffs, "expected", "got")
		}
	}
	for _, f := range rep.Lint {
		sev := f.Severity
		if f.History {
			sev += " (history: at or before the baseline, not failing)"
		}
		printf(c, "%s%s %s: %s\n    fix: %s\n", where(f.File, f.Line), f.Code, sev, f.Message, f.Fix)
	}
	errs, warns := lintCounts(rep.Lint)
	state := "ok"
	if !rep.OK {
		state = "FAILED"
	}
	printf(c, "%s: %s: %d migrations, head %d, %d problem(s), %d lint error(s), %d warning(s)\n", dir, state, rep.Migrations, rep.Head, len(rep.Problems), errs, warns)
}

// printDiffs shows schema differences object by object.
func printDiffs(c *cli.Context, diffs []engine.SchemaDiff, wantName, gotName string) {
	w := len(wantName)
	if len(gotName) > w {
		w = len(gotName)
	}
	for _, d := range diffs {
		printf(c, "  %s %s %s\n", d.Change, d.Type, d.Name)
		if d.Want != "" {
			printf(c, "    %-*s %s\n", w+1, wantName+":", d.Want)
		}
		if d.Got != "" {
			printf(c, "    %-*s %s\n", w+1, gotName+":", d.Got)
		}
	}
}
