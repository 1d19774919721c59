package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/schema"
	"github.com/urfave/cli/v2"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a migrations directory",
		UsageText: "shoal init [--dir DIR]",
		Flags:     []cli.Flag{dirFlag()},
		Action: func(c *cli.Context) error {
			dir := diskDir(c)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return failure(err, "cannot create %s: %v", dir, err)
			}
			readme := filepath.Join(dir, "README.md")
			if _, err := os.Stat(readme); errors.Is(err, fs.ErrNotExist) {
				if err := os.WriteFile(readme, []byte(migrationsReadme), 0o644); err != nil {
					return failure(err, "cannot write %s: %v", readme, err)
				}
			}
			printf(c, "%s: ready; add a migration with `shoal new --dir %s NAME`\n", dir, dir)
			return nil
		},
	}
}

const migrationsReadme = `# Migrations

Files are named <version>_<description>.<ext>: version digits (0001, 20240115103000),
then - or _, then .sql, .sh or .py. shoal applies them in version order.

A .sql file is the up migration, or has sections:

    -- migrate:up
    CREATE TABLE ...;
    -- migrate:down
    DROP TABLE ...;

Add transaction:false after a marker to run that section outside a transaction.
.sh and .py files run as ` + "`sh FILE DB_PATH`" + ` / ` + "`python3 FILE DB_PATH`" + `.
Never edit a migration once it is applied anywhere: add a new one.
`

func newCommand() *cli.Command {
	return &cli.Command{
		Name:      "new",
		Usage:     "create the next migration file",
		UsageText: "shoal new [--dir DIR] [--ext sql|sh|py] NAME",
		Description: "The version is the highest + 1, zero-padded to the directory's width (4 digits by\n" +
			"default); in a directory of timestamp versions (14 digits) it is the current UTC time.",
		Flags: []cli.Flag{
			dirFlag(),
			&cli.StringFlag{Name: "ext", Value: "sql", Usage: "sql, sh or py"},
		},
		Action: newAction,
	}
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func newAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("shoal new takes one NAME, e.g. `shoal new add_users`")
	}
	name := strings.Trim(nonWord.ReplaceAllString(strings.ToLower(c.Args().First()), "_"), "_")
	if name == "" {
		return usageError("NAME %q has no letters or digits", c.Args().First())
	}
	ext := c.String("ext")
	if ext != "sql" && ext != "sh" && ext != "py" {
		return usageError("--ext must be sql, sh or py, got %q", ext)
	}
	dir := diskDir(c)
	fsys, err := engine.OpenDir(dir)
	if err != nil {
		return err
	}
	e, err := engine.New(engine.Options{Dir: fsys, DirName: dir, Layout: c.String("layout")})
	if err != nil {
		return err
	}
	if e.Layout() != engine.LayoutShoal {
		return failure(nil, "%s is in %s's layout: shoal new writes shoal's file names, which would mix layouts; create the migration with %s's own naming (docs/switching.md)", dir, e.Layout(), e.Layout())
	}
	width, stamp := 4, false
	ms := e.Migrations()
	if len(ms) > 0 {
		last := ms[len(ms)-1]
		digits := len(last.File) - len(strings.TrimLeft(last.File, "0123456789"))
		width = digits
		stamp = digits >= 14
	}
	var ver string
	if stamp {
		v := time.Now().UTC().Format("20060102150405")
		if head := fmt.Sprint(e.Head()); v <= head {
			var n int64
			fmt.Sscan(head, &n)
			v = fmt.Sprint(n + 1)
		}
		ver = v
	} else {
		ver = fmt.Sprintf("%0*d", width, e.Head()+1)
	}
	file := filepath.Join(dir, ver+"_"+name+"."+ext)
	var body string
	switch ext {
	case "sql":
		body = "-- migrate:up\n\n\n-- migrate:down\n\n"
	case "sh":
		body = "#!/bin/sh\n# shoal runs this as: sh " + filepath.Base(file) + " DB_PATH\nset -eu\ndb=\"$1\"\n"
	case "py":
		body = "# shoal runs this as: python3 " + filepath.Base(file) + " DB_PATH\nimport sqlite3, sys\n\ndb = sqlite3.connect(sys.argv[1])\n"
	}
	if err := createNew(file, body); err != nil {
		return err
	}
	printf(c, "%s\n", file)
	// The sum file records the new migration, so that a branch adding
	// another one with this version conflicts in git.
	if _, err := schema.WriteSum(dir); err != nil {
		return failure(err, "%s created, but cannot write %s: %v (run `shoal hash`)", file, engine.SumFile, err)
	}
	return nil
}

// diskDir is the migrations directory on disk for commands that write to
// it: --dir, SHOAL_DIR, or ./migrations.
func diskDir(c *cli.Context) string {
	if d := c.String("dir"); d != "" {
		return d
	}
	return "migrations"
}

// createNew writes a new migration file, never replacing an existing one.
func createNew(file, body string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return failure(err, "cannot create %s: %v", file, err)
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return failure(err, "cannot write %s: %v", file, err)
	}
	if err := f.Close(); err != nil {
		return failure(err, "cannot write %s: %v", file, err)
	}
	return nil
}
