package main

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
)

// actionError is the one place an action's error becomes an exit code and
// a stderr line: a *cliError stays as made, a bad NATS auth option is a
// usage error, anything else a failure with the CLI's advice for its kind,
// given once (not when the message already names the flag or command).
func TestActionError(t *testing.T) {
	code := func(err error) (int, string) {
		var ce *cliError
		if !errors.As(err, &ce) {
			t.Fatalf("%v: not a *cliError", err)
		}
		return ce.code, ce.msg
	}
	if actionError(nil) != nil {
		t.Fatal("nil became an error")
	}
	u := usageError("bad flag")
	if actionError(u) != u {
		t.Fatal("a *cliError was replaced")
	}
	if c, _ := code(actionError(fmt.Errorf("%w: no password", fleet.ErrBadAuthConfig))); c != exitUsage {
		t.Fatalf("bad auth config: exit %d, want %d", c, exitUsage)
	}
	locked := fmt.Errorf("/srv/a.db: %w (another migrator holds it)", engine.ErrLocked)
	c, msg := code(actionError(locked))
	if c != exitFailure || !strings.HasPrefix(msg, locked.Error()) || !strings.Contains(msg, "--busy-timeout") {
		t.Fatalf("locked: exit %d %q", c, msg)
	}
	if !errors.Is(actionError(locked), engine.ErrLocked) {
		t.Fatal("the kind is no longer reachable with errors.Is")
	}
	hinted := fmt.Errorf("/srv/a.db: %w: wait or raise --busy-timeout", engine.ErrLocked)
	if _, msg := code(actionError(hinted)); msg != hinted.Error() {
		t.Fatalf("advice given twice: %q", msg)
	}
	plain := errors.New("something else")
	if c, msg := code(actionError(plain)); c != exitFailure || msg != "something else" {
		t.Fatalf("plain: exit %d %q", c, msg)
	}
}

// The engine's hints speak of its API (Engine.Enroll, MigrateOptions.AllowChanged,
// Options.BusyTimeout); on stderr the CLI names its commands and flags instead.
func TestEngineHintsInCLITerms(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"m/0001_a.sql": "CREATE TABLE a (x);"})
	// Unmanaged: a DB with a table and no shoal history.
	db := filepath.Join(d, "app.db")
	if o := shoal(t, d, nil, "migrate", "--dir", "m", "--db", filepath.Join(d, "seed.db")); o.code != 0 {
		t.Fatal(o)
	}
	h, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec("CREATE TABLE legacy (y)"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	o := shoal(t, d, nil, "migrate", "--dir", "m", "--db", db)
	if o.code != 1 || !strings.Contains(o.stderr, "adopt it with `shoal enroll --db "+db+"` once its schema matches your migrations") || strings.Contains(o.stderr, "Engine.") {
		t.Fatalf("unmanaged: %+v", o)
	}
	// Changed: an applied file edited afterwards.
	writeFiles(t, d, map[string]string{"m/0001_a.sql": "CREATE TABLE a (x, z);"})
	o = shoal(t, d, nil, "migrate", "--dir", "m", "--db", filepath.Join(d, "seed.db"))
	if o.code != 1 || !strings.Contains(o.stderr, "accept the edit with `shoal accept` / --allow-changed") || strings.Contains(o.stderr, "MigrateOptions") {
		t.Fatalf("changed: %+v", o)
	}
	// The mapping itself, for a lock timeout.
	locked := &engine.Error{Path: "/srv/a.db", Kind: engine.ErrLocked, Detail: "another migrator held it", Hint: "wait for it to finish or raise Options.BusyTimeout"}
	if msg := cliTerms(locked); !strings.HasSuffix(msg, "(wait for it to finish or raise --busy-timeout)") {
		t.Fatalf("locked: %s", msg)
	}
	below := &engine.Error{Path: "/srv/a.db", Kind: engine.ErrBadTarget, Detail: "--to 1 is below the current version 2", Hint: "use Engine.Down to go back"}
	if msg := cliTerms(below); !strings.HasSuffix(msg, "(use `shoal down` to go back)") {
		t.Fatalf("below: %s", msg)
	}
	fresh := &engine.Error{Path: "/srv/a.db", Kind: engine.ErrNotFound, Hint: "enroll adopts an existing database; a new one needs only Engine.Migrate"}
	if msg := cliTerms(fresh); !strings.HasSuffix(msg, "a new one needs only `shoal migrate`)") {
		t.Fatalf("enroll of a missing file: %s", msg)
	}
	hot := &engine.Error{Path: "/srv/a.db", Kind: engine.ErrHotJournal, Hint: "migrate it with Engine.Migrate (it rolls the transaction back first, then migrates)"}
	if msg := cliTerms(hot); !strings.Contains(msg, "(run `shoal migrate --db /srv/a.db` (it rolls the transaction back first") {
		t.Fatalf("hot journal: %s", msg)
	}
	if msg := cliTerms(fmt.Errorf("tenant x: %w", locked)); !strings.HasPrefix(msg, "tenant x: /srv/a.db") || !strings.Contains(msg, "--busy-timeout") {
		t.Fatalf("wrapped: %s", msg)
	}
}

// Backup problems: the same, for the backup directory flags.
func TestEngineBackupHintsInCLITerms(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"m/0001_a.sql": "CREATE TABLE a (x);"})
	db := filepath.Join(d, "app.db")
	if o := shoal(t, d, nil, "migrate", "--dir", "m", "--db", db); o.code != 0 {
		t.Fatal(o)
	}
	o := shoal(t, d, nil, "backup", "--db", db, "--backup-dir", filepath.Join(d, "nope"))
	if o.code != 1 || !strings.Contains(o.stderr, "(create it or fix --backup-dir)") || strings.Contains(o.stderr, "BackupOptions") {
		t.Fatalf("backup dir: %+v", o)
	}
	root := &engine.Error{Op: "backup", Path: "/srv/a.db", Kind: engine.ErrBackup, File: "/b", Hint: "pass the BackupOptions.Root the database lives under, or no BackupOptions.Root for a flat backup directory"}
	if msg := cliTerms(root); !strings.Contains(msg, "(pass the --root the database lives under, or no --root for a flat backup directory)") {
		t.Fatalf("root: %s", msg)
	}
}
