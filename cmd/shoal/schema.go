package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/urfave/cli/v2"
)

// Schema tools: schema, check, hash, renumber, diff, autogen.
func init() {
	extraCommands = append(extraCommands, schemaCommand(), checkCommand(), hashCommand(), renumberCommand(), diffCommand(), autogenCommand())
}

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
		return nil, failure(err, "%v", err)
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
			return failure(err, "%v", err)
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

// writeFileAtomic writes path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

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
	o := engine.CheckOptions{Options: engine.Options{Dir: fsys, DirName: dir, Layout: c.String("layout")}, Strict: c.Bool("strict"), NoRoundTrip: c.Bool("no-roundtrip")}
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
	rep, err := engine.Check(c.Context, o)
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
			if f.Severity == engine.SeverityError || c.Bool("strict") {
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

func lintCounts(ls []engine.LintFinding) (errs, warns int) {
	for _, f := range ls {
		if f.Severity == engine.SeverityError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

func printCheck(c *cli.Context, dir string, rep *engine.CheckReport) {
	if rep.Layout != "" {
		printf(c, "%s: %s layout, %d migrations, head %d\n", dir, rep.Layout, rep.Migrations, rep.Head)
	}
	for _, p := range rep.Problems {
		printf(c, "problem (%s): %s%s\n", p.Kind, where(p.File, p.Line), p.Message)
		if p.Kind == engine.ProblemSchema {
			printDiffs(c, p.Diffs, "migrations", "schema.sql")
		} else {
			printDiffs(c, p.Diffs, "expected", "got")
		}
	}
	for _, f := range rep.Lint {
		printf(c, "%s%s %s: %s\n    fix: %s\n", where(f.File, f.Line), f.Code, f.Severity, f.Message, f.Fix)
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

func hashCommand() *cli.Command {
	return &cli.Command{
		Name:      "hash",
		Usage:     "rewrite the sum file (shoal.sum) of the migrations directory",
		UsageText: "shoal hash [--dir DIR]",
		Description: "shoal.sum lists every migration file with its checksum and a total line. Commit it\n" +
			"with the migrations: two branches that each add a migration then conflict in git on\n" +
			"it instead of colliding at deploy. Run after editing a migration that is not applied\n" +
			"anywhere yet; `shoal new` and `shoal renumber` rewrite it for you.",
		Flags:  []cli.Flag{dirFlag()},
		Action: hashAction,
	}
}

func hashAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("shoal hash takes no arguments, got %q", c.Args().First())
	}
	dir := diskDir(c)
	if _, err := engine.OpenDir(dir); err != nil {
		return failure(err, "%v", err)
	}
	changed, err := engine.WriteSum(dir)
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

func renumberCommand() *cli.Command {
	return &cli.Command{
		Name:      "renumber",
		Usage:     "move the newer of two migrations with the same version to the next free version",
		UsageText: "shoal renumber [--dir DIR] [FILE...]",
		Description: "After merging two branches that each added a migration with the same version, moves\n" +
			"the newer file to the highest version + 1 (keeping its digits' width) and rewrites the\n" +
			"sum file. The newer one is the file that the sum file does not list on our side (the\n" +
			"branch merged into); else the one git added last (uncommitted counts as newest); else the\n" +
			"one modified last. Name FILEs to choose yourself. A moved migration that was already\n" +
			"applied to a DB (a dev DB) makes that DB `ahead`: recreate it.",
		Flags:  []cli.Flag{dirFlag()},
		Action: renumberAction,
	}
}

func renumberAction(c *cli.Context) error {
	dir := diskDir(c)
	fsys, err := engine.OpenDir(dir)
	if err != nil {
		return failure(err, "%v", err)
	}
	files, err := engine.ListMigrationFiles(fsys)
	if err != nil {
		return failure(err, "migrations directory %s: %v", dir, err)
	}
	byFile := map[string]engine.MigrationFile{}
	groups := map[int64][]engine.MigrationFile{}
	var maxV int64
	for _, f := range files {
		byFile[f.File] = f
		groups[f.Name.Version] = append(groups[f.Name.Version], f)
		maxV = max(maxV, f.Name.Version)
	}
	var move []engine.MigrationFile
	if c.NArg() > 0 {
		for _, a := range c.Args().Slice() {
			f, ok := byFile[filepath.Base(a)]
			if !ok {
				return usageError("%s is not a migration file in %s", a, dir)
			}
			move = append(move, f)
		}
	} else {
		sumData, _ := os.ReadFile(filepath.Join(dir, engine.SumFile))
		ours := engine.SumSides(sumData)
		versions := make([]int64, 0, len(groups))
		for v, g := range groups {
			if len(g) > 1 {
				versions = append(versions, v)
			}
		}
		sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
		for _, v := range versions {
			move = append(move, newerOf(dir, groups[v], ours)...)
		}
	}
	if len(move) == 0 {
		printf(c, "%s: no two migrations share a version; nothing to renumber\n", dir)
		return nil
	}
	for _, f := range move {
		maxV++
		n := f.Name
		n.Version = maxV
		to := n.String()
		if _, err := os.Lstat(filepath.Join(dir, to)); err == nil {
			return failure(nil, "cannot move %s: %s already exists", f.File, to)
		}
		if err := os.Rename(filepath.Join(dir, f.File), filepath.Join(dir, to)); err != nil {
			return failure(err, "cannot rename %s: %v", f.File, err)
		}
		printf(c, "%s -> %s\n", filepath.Join(dir, f.File), filepath.Join(dir, to))
	}
	if _, err := engine.WriteSum(dir); err != nil {
		return failure(err, "renamed, but cannot write %s: %v (run `shoal hash`)", engine.SumFile, err)
	}
	printf(c, "%s: rewritten; run `shoal check`, and recreate any dev DB that had a moved migration applied\n", filepath.Join(dir, engine.SumFile))
	return nil
}

// newerOf picks the files of one version to move, keeping the oldest.
func newerOf(dir string, group []engine.MigrationFile, ours map[string]bool) []engine.MigrationFile {
	var kept, others []engine.MigrationFile
	for _, f := range group {
		if ours[f.File] {
			kept = append(kept, f)
		} else {
			others = append(others, f)
		}
	}
	if len(kept) == 1 {
		return others
	}
	// Order by age: git's time of the commit that added the file
	// (uncommitted: newest), then modification time, then name.
	type aged struct {
		f          engine.MigrationFile
		added, mod int64
	}
	as := make([]aged, len(group))
	for i, f := range group {
		as[i] = aged{f: f, added: gitAdded(dir, f.File)}
		if st, err := os.Stat(filepath.Join(dir, f.File)); err == nil {
			as[i].mod = st.ModTime().UnixNano()
		}
	}
	sort.SliceStable(as, func(i, j int) bool {
		if as[i].added != as[j].added {
			return as[i].added < as[j].added
		}
		if as[i].mod != as[j].mod {
			return as[i].mod < as[j].mod
		}
		return as[i].f.File < as[j].f.File
	})
	out := make([]engine.MigrationFile, 0, len(as)-1)
	for _, a := range as[1:] {
		out = append(out, a.f)
	}
	return out
}

// gitAdded is the commit time of the commit that added file, or max int64
// when git does not know it (no git, not a repository, not committed).
func gitAdded(dir, file string) int64 {
	cmd := exec.Command("git", "log", "--diff-filter=A", "--format=%ct", "-1", "--", file)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return 1<<63 - 1
	}
	v, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		return 1<<63 - 1
	}
	return v
}

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
	diffs, err := e.Drift(c.Context, path)
	if err != nil {
		return failure(err, "%v", err)
	}
	s, err := e.Status(c.Context, path)
	if err != nil {
		return failure(err, "%v", err)
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
	var renames []engine.Rename
	for _, r := range c.StringSlice("rename") {
		tc, to, ok := strings.Cut(r, ":")
		t, from, ok2 := strings.Cut(tc, ".")
		if !ok || !ok2 || t == "" || from == "" || to == "" {
			return usageError("--rename %q: want TABLE.OLD:NEW, e.g. users.mail:email", r)
		}
		renames = append(renames, engine.Rename{Table: t, From: from, To: to})
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
	g, err := e.Autogen(c.Context, string(desired), engine.AutogenOptions{Renames: renames})
	if err != nil {
		return failure(err, "%v", err)
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
	if _, err := engine.WriteSum(dir); err != nil {
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
