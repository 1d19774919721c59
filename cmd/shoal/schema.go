package main

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/internal/outfile"
	"github.com/urfave/cli/v2"
)

// schemaFileName is kept beside the migrations directory (in its parent).
const schemaFileName = "schema.sql"

// schemaHeader starts a schema.sql written by shoal.
const schemaHeader = "-- The schema the migrations produce, written by `shoal schema --write`.\n" +
	"-- Edit it and run `shoal autogen NAME` to get the migration; `shoal check` compares them.\n\n"

// onDisk resolves the migrations directory for commands that need a real
// directory (they read schema.sql beside it or write into it). embedded is
// true for the embedded example migrations.
func onDisk(c *cli.Context) (fsys fs.FS, dir string, embedded bool, err error) {
	fsys, dir, err = migrationsDir(c)
	if err != nil {
		return nil, dir, false, err
	}
	if c.String("dir") == "" {
		if st, serr := os.Stat("migrations"); serr != nil || !st.IsDir() {
			return fsys, dir, true, nil
		}
	}
	return fsys, dir, false, nil
}

// schemaPath is schema.sql beside the migrations directory.
func schemaPath(dir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(dir)), schemaFileName)
}

// scratchSchema builds a scratch DB from the migrations (up to head) and
// returns its canonical schema.
func scratchSchema(c *cli.Context, e *engine.Engine) ([]engine.SchemaObject, error) {
	d, err := os.MkdirTemp("", "shoal-schema-")
	if err != nil {
		return nil, failure(err, "cannot create a scratch directory: %v", err)
	}
	defer os.RemoveAll(d)
	scratch := filepath.Join(d, "scratch.db")
	if _, err := e.Migrate(c.Context, scratch, engine.MigrateOptions{}); err != nil {
		return nil, failure(err, "the migrations do not apply to an empty DB: %v (run `shoal check` for details)", err)
	}
	objs, err := engine.DBSchema(c.Context, scratch)
	if err != nil {
		return nil, err
	}
	return objs, nil
}

func schemaCommand() *cli.Command {
	return &cli.Command{
		Name:      "schema",
		Usage:     "print the canonical user schema as runnable SQL",
		UsageText: "shoal schema [--dir DIR] [--db PATH] [--write] [--json]",
		Description: "Prints the tables, indexes, views and triggers (not shoal's own tables nor SQLite's\n" +
			"internals) as runnable SQL, one normalised statement per object, sorted by type then\n" +
			"name, so two schemas diff cleanly. Without --db: what the migrations produce on a\n" +
			"scratch DB. --write stores that in schema.sql beside the migrations directory (in its\n" +
			"parent) so schema changes show up in review; `shoal check` keeps the two in step.",
		Flags: []cli.Flag{
			dirFlag(), dbFlag(),
			&cli.BoolFlag{Name: "write", Usage: "write schema.sql beside the migrations directory instead of printing"},
			jsonFlag(`print {"schema": [{"type", "name", "table", "sql"}], "sql"}`),
		},
		Action: schemaAction,
	}
}

func schemaAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("shoal schema takes no arguments, got %q", c.Args().First())
	}
	db := c.String("db")
	if db != "" && c.Bool("write") {
		return usageError("--write stores what the migrations produce; it cannot be combined with --db")
	}
	var objs []engine.SchemaObject
	var dir string
	if db != "" {
		var err error
		if objs, err = engine.DBSchema(c.Context, db); err != nil {
			return err
		}
	} else {
		_, d, embedded, err := onDisk(c)
		if err != nil {
			return err
		}
		if c.Bool("write") && embedded {
			return failure(nil, "--write needs a migrations directory on disk: pass --dir DIR (the embedded example migrations have no place for schema.sql)")
		}
		dir = d
		e, err := openEngine(c)
		if err != nil {
			return err
		}
		if objs, err = scratchSchema(c, e); err != nil {
			return err
		}
	}
	text := engine.SchemaSQL(objs)
	if c.Bool("write") {
		path := schemaPath(dir)
		if err := writeFileAtomic(path, []byte(schemaHeader+text)); err != nil {
			return failure(err, "cannot write %s: %v", path, err)
		}
		printf(c, "%s: %d objects\n", path, len(objs))
		return nil
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"schema": objs, "sql": text})
	}
	printf(c, "%s", text)
	return nil
}

// writeFileAtomic writes path through a temporary file and a rename (a
// device or pipe in place: internal/outfile).
func writeFileAtomic(path string, data []byte) error {
	return outfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
