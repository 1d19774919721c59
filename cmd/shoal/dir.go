package main

import (
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/migrations"
	"github.com/urfave/cli/v2"
)

// dirFlag is accepted by every command that reads migrations.
func dirFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "dir",
		Usage:   "migrations directory (default: ./migrations if it exists, else the embedded example migrations)",
		EnvVars: []string{"SHOAL_DIR"},
	}
}

// busyTimeoutFlag bounds every wait for a lock.
func busyTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "busy-timeout", Value: 30 * time.Second, Usage: "how long to wait for another migrator or writer before giving up"}
}

// scriptTimeoutFlag bounds one .sh/.py step.
func scriptTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "script-timeout", Value: 10 * time.Minute, Usage: "how long one .sh/.py migration may run before it is killed and undone"}
}

// migrationsDir resolves --dir: the flag or SHOAL_DIR; else ./migrations if
// it exists; else the embedded example migrations.
func migrationsDir(c *cli.Context) (fs.FS, string, error) {
	if dir := c.String("dir"); dir != "" {
		fsys, err := engine.OpenDir(dir)
		if err != nil {
			return nil, dir, err
		}
		return fsys, dir, nil
	}
	if st, err := os.Stat("migrations"); err == nil && st.IsDir() {
		fsys, err := engine.OpenDir("migrations")
		if err != nil {
			return nil, "migrations", err
		}
		return fsys, "migrations", nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "migrations", failure(err, "cannot read ./migrations: %v", err)
	}
	// Say so: a command run from the wrong directory must not pass
	// silently on the example migrations. Said when the command ends,
	// after its error line (which comes first).
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[embeddedKey] = true
	return migrations.FS, embeddedName, nil
}

// usesEmbedded reports whether migrationsDir would fall back to the
// embedded example migrations.
func usesEmbedded(c *cli.Context) bool {
	if c.String("dir") != "" {
		return false
	}
	_, err := os.Stat("migrations")
	return errors.Is(err, fs.ErrNotExist)
}

const (
	embeddedNotice = "shoal: using the embedded example migrations (no ./migrations here and no --dir or SHOAL_DIR)"
	embeddedKey    = "shoal.embedded"
)

// embeddedName names the embedded example migrations in messages.
const embeddedName = "embedded example migrations"

// openEngine parses and validates the migrations directory once.
func openEngine(c *cli.Context) (*engine.Engine, error) {
	fsys, name, err := migrationsDir(c)
	if err != nil {
		return nil, err
	}
	opts := engine.Options{Dir: fsys, DirName: name, Layout: c.String("layout")}
	if hasFlag(c, "busy-timeout") {
		opts.BusyTimeout = c.Duration("busy-timeout")
	}
	if hasFlag(c, "script-timeout") {
		opts.ScriptTimeout = c.Duration("script-timeout")
	}
	e, err := engine.New(opts)
	if err != nil {
		return nil, failure(err, "%v (fix the file names or contents, then run `shoal check`)", err)
	}
	return e, nil
}

// hasFlag reports whether the command defines the flag (set or defaulted).
func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// requireString returns a required option or a usage error naming it.
func requireString(c *cli.Context, name, env string) (string, error) {
	v := c.String(name)
	if v == "" {
		if env != "" {
			return "", usageError("missing --%s (or %s): %s", name, env, "see --help")
		}
		return "", usageError("missing --%s: see --help", name)
	}
	return v, nil
}

// dbAndEngine reads --db (required) and opens the migrations: what every
// single-DB command starts with.
func dbAndEngine(c *cli.Context) (string, *engine.Engine, error) {
	path, err := requireString(c, "db", "SHOAL_DB")
	if err != nil {
		return "", nil, err
	}
	e, err := openEngine(c)
	if err != nil {
		return "", nil, err
	}
	return path, e, nil
}
