package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/schema"
	"github.com/urfave/cli/v2"
)

func autogenCommand() *cli.Command {
	return &cli.Command{
		Name:      "autogen",
		Usage:     "write the next migration from the difference between schema.sql and the migrations",
		UsageText: "shoal autogen [--dir DIR] [--schema FILE] [--rename TABLE.OLD:NEW]... [--dry-run] NAME",
		Description: "Diffs the desired schema (schema.sql beside the migrations directory, edited by hand)\n" +
			"against what the migrations produce and writes the next migration, with a down section.\n" +
			"New and gone tables, indexes, views and triggers are created and dropped (drops of tables\n" +
			"and columns are flagged DESTRUCTIVE); appended columns SQLite can add in place become\n" +
			"ALTER TABLE ADD COLUMN; a column is renamed only with --rename (never guessed); any other\n" +
			"table change is SQLite's 12-step table rebuild, keeping rows, indexes, triggers, views and\n" +
			"the AUTOINCREMENT counter. The migration is tried on a scratch DB first.",
		Flags: []cli.Flag{
			dirFlag(),
			&cli.StringFlag{Name: "schema", Usage: "desired schema file (default: schema.sql beside the migrations directory)"},
			&cli.StringSliceFlag{Name: "rename", Usage: "rename a column instead of dropping one and adding another: TABLE.OLD:NEW (repeatable)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the migration instead of writing it"},
		},
		Action: autogenAction,
	}
}

func autogenAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("shoal autogen takes one NAME, e.g. `shoal autogen add_archived`")
	}
	name := strings.Trim(nonWord.ReplaceAllString(strings.ToLower(c.Args().First()), "_"), "_")
	if name == "" {
		return usageError("NAME %q has no letters or digits", c.Args().First())
	}
	var renames []schema.Rename
	for _, r := range c.StringSlice("rename") {
		tc, to, ok := strings.Cut(r, ":")
		t, from, ok2 := strings.Cut(tc, ".")
		if !ok || !ok2 || t == "" || from == "" || to == "" {
			return usageError("--rename %q: want TABLE.OLD:NEW, e.g. users.mail:email", r)
		}
		renames = append(renames, schema.Rename{Table: t, From: from, To: to})
	}
	_, dir, embedded, err := onDisk(c)
	if err != nil {
		return err
	}
	if embedded && !c.Bool("dry-run") {
		return failure(nil, "autogen writes into a migrations directory on disk: pass --dir DIR (or --dry-run)")
	}
	sp := c.String("schema")
	if sp == "" {
		if embedded {
			return usageError("pass --schema FILE: the embedded example migrations have no schema.sql")
		}
		sp = schemaPath(dir)
	}
	desired, err := os.ReadFile(sp)
	if err != nil {
		return failure(err, "cannot read the desired schema %s: %v (write it with `shoal schema --write`, then edit it)", sp, err)
	}
	e, err := openEngine(c)
	if err != nil {
		return err
	}
	g, err := schema.Autogen(c.Context, e, string(desired), schema.AutogenOptions{Renames: renames})
	if err != nil {
		return err
	}
	if g.Empty() {
		printf(c, "%s equals what the migrations produce: nothing to generate\n", sp)
		return nil
	}
	body := g.File(filepath.Base(sp))
	if c.Bool("dry-run") {
		printf(c, "%s", body)
		return nil
	}
	file := filepath.Join(dir, nextVersion(e)+"_"+name+".sql")
	if err := createNew(file, body); err != nil {
		return err
	}
	if _, err := schema.WriteSum(dir); err != nil {
		return failure(err, "%s written, but cannot write %s: %v (run `shoal hash`)", file, engine.SumFile, err)
	}
	printf(c, "%s\n", file)
	for _, d := range g.Destructive {
		fmt.Fprintf(c.App.ErrWriter, "shoal: warning: %s: DESTRUCTIVE: %s\n", file, d)
	}
	return nil
}

// nextVersion is the next version like `shoal new` picks it: head + 1
// zero-padded to the directory's width (4 by default); in a timestamp
// directory, head + 1 as well (a generated migration follows the head).
func nextVersion(e *engine.Engine) string {
	width := 4
	if ms := e.Migrations(); len(ms) > 0 {
		last := ms[len(ms)-1].File
		width = len(last) - len(strings.TrimLeft(last, "0123456789"))
	}
	return fmt.Sprintf("%0*d", width, e.Head()+1)
}
