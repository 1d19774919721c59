package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/internal/sqltext"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// Options are the engine's: the migrations directory (Dir, DirName) and
	// Go migrations.
	engine.Options
	// Schema is the text of schema.sql; HasSchema says it exists.
	Schema    []byte
	HasSchema bool
	// SchemaName names schema.sql in messages.
	SchemaName string
	// Strict makes warnings (destructive changes) fail the check.
	Strict bool
	// NoRoundTrip skips the up/down/up round trip.
	NoRoundTrip bool
	// Since is the lint baseline: findings in migrations at or before it
	// are history and do not fail the check (0: the sum file's baseline
	// line, if any; see baseline.go).
	Since int64
}

// Problem kinds of a check.
const (
	ProblemDirectory = "directory" // names, duplicates, sections, directives
	ProblemApply     = "apply"     // a migration fails on a scratch DB
	ProblemRoundTrip = "roundtrip" // up, down, up does not give the same schema
	ProblemSchema    = "schema"    // schema.sql differs from what migrations produce
	ProblemSum       = "sum"       // the sum file does not match
	ProblemLint      = "lint"      // a lint finding that fails the check
)

// CheckProblem is one problem found by Check.
type CheckProblem struct {
	Kind    string              `json:"kind"`
	File    string              `json:"file"`
	Line    int                 `json:"line"`
	Message string              `json:"message"`
	Diffs   []engine.SchemaDiff `json:"diffs"`
}

// CheckReport is the result of Check. OK is false when there is any
// problem, or a lint error (or, with Strict, a lint warning).
type CheckReport struct {
	OK         bool           `json:"ok"`
	Migrations int            `json:"migrations"`
	Head       int64          `json:"head"`
	Problems   []CheckProblem `json:"problems"`
	Lint       []LintFinding  `json:"lint"`
	// Layout names the layout the directory was read in ("" when it did
	// not load).
	Layout string `json:"layout"`
	// Baseline is the lint baseline used (0: none).
	Baseline int64 `json:"baseline"`
}

// Check is `shoal check`: everything CI should know about a migrations
// directory before it reaches a tenant. It parses the directory (names,
// duplicates, sections, directives), applies every migration one by one to
// a scratch DB (an SQL error names the file and line), round-trips the
// migrations that have down parts (down to 0 or to the newest irreversible
// one, then up again, comparing the schema at every version), compares
// schema.sql with what the migrations produce, verifies the sum file, and
// lints every .sql migration. An error is returned only when the check
// itself cannot run (no temporary directory).
func Check(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	rep := &CheckReport{Problems: []CheckProblem{}, Lint: []LintFinding{}}
	problem := func(kind, file string, line int, diffs []engine.SchemaDiff, format string, args ...any) {
		if diffs == nil {
			diffs = []engine.SchemaDiff{}
		}
		rep.Problems = append(rep.Problems, CheckProblem{Kind: kind, File: file, Line: line, Message: fmt.Sprintf(format, args...), Diffs: diffs})
	}
	var loaded []engine.Migration
	defer func() {
		rep.OK = len(rep.Problems) == 0
		markHistory(rep.Lint, loaded, rep.Baseline)
		for _, f := range rep.Lint {
			if f.History {
				continue
			}
			if f.Severity == SeverityError || o.Strict {
				rep.OK = false
			}
		}
	}()

	// The sum file is checked even when the directory does not load: a
	// conflict there is the usual sign of colliding versions.
	if o.Dir != nil {
		sp, err := VerifySum(o.Dir)
		if err != nil {
			problem(ProblemSum, engine.SumFile, 0, nil, "%v", err)
		}
		for _, p := range sp {
			problem(ProblemSum, engine.SumFile, 0, nil, "%s", p)
		}
	}

	e, err := engine.New(o.Options)
	if err != nil {
		var de *engine.DirError
		file := ""
		if errors.As(err, &de) {
			file = de.File
		}
		msg := err.Error()
		if de != nil && de.Other != "" && !strings.Contains(msg, "renumber") && !errors.Is(err, engine.ErrDuplicateVersion) {
			msg += " (two branches added the same version? `shoal renumber` moves the newer one)"
		}
		problem(ProblemDirectory, file, lineOf(msg), nil, "%s", msg)
		return rep, nil
	}
	migrations := e.Migrations()
	byVersion := make(map[int64]*engine.Migration, len(migrations))
	for i := range migrations {
		byVersion[migrations[i].Version] = &migrations[i]
	}
	rep.Migrations, rep.Head, rep.Layout = len(migrations), e.Head(), e.Layout()
	loaded = migrations
	rep.Baseline = o.Since
	if rep.Baseline == 0 && o.Dir != nil {
		if data, err := fs.ReadFile(o.Dir, engine.SumFile); err == nil {
			if v, ok, err := SumBaseline(data); err != nil {
				problem(ProblemSum, engine.SumFile, 0, nil, "%v", err)
			} else if ok {
				rep.Baseline = v
			}
		}
	}

	scratchDir, err := os.MkdirTemp("", "shoal-check-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratchDir)
	scratch := filepath.Join(scratchDir, "check.db")

	// Up, one migration at a time, keeping the schema at every version.
	states := map[int64]*schemaState{}
	if states[0], err = readSchemaState(ctx, scratch); err != nil {
		return nil, err
	}
	prev := int64(0)
	applied := 0
	for i := range migrations {
		m := &migrations[i]
		if _, err := e.Migrate(ctx, scratch, engine.MigrateOptions{To: m.Version}); err != nil {
			file, line := m.File, 0
			var me *engine.Error
			if errors.As(err, &me) {
				line = me.Line
			}
			problem(ProblemApply, file, line, nil, "%s", scratchMessage(err, scratch))
			break
		}
		st, err := readSchemaState(ctx, scratch)
		if err != nil {
			return nil, err
		}
		states[m.Version] = st
		rep.Lint = append(rep.Lint, lintMigration(m, migrationText(o.Dir, m), &lintState{before: states[prev], after: st})...)
		prev = m.Version
		applied++
	}
	// Lint the migration that failed and those after it, without schema facts.
	for i := applied; i < len(migrations); i++ {
		m := &migrations[i]
		rep.Lint = append(rep.Lint, lintMigration(m, migrationText(o.Dir, m), nil)...)
	}
	if applied < len(migrations) {
		return rep, nil
	}

	// Round trip: down step by step to 0 or the newest irreversible
	// migration, comparing with the schema recorded on the way up, then up
	// again.
	if !o.NoRoundTrip {
		floor := int64(0)
		for _, m := range migrations {
			if !m.HasDown {
				floor = m.Version
			}
		}
		var versions []int64 // applied versions above floor, in order
		for _, m := range migrations {
			if m.Version > floor {
				versions = append(versions, m.Version)
			}
		}
		ok := true
		for i := len(versions) - 1; i >= 0 && ok; i-- {
			to := floor
			if i > 0 {
				to = versions[i-1]
			}
			m := byVersion[versions[i]]
			if _, err := e.Down(ctx, scratch, to); err != nil {
				line := 0
				var me *engine.Error
				if errors.As(err, &me) {
					line = me.Line
				}
				problem(ProblemRoundTrip, m.File, line, nil, "down section fails: %s", scratchMessage(err, scratch))
				ok = false
				break
			}
			got, err := readSchemaState(ctx, scratch)
			if err != nil {
				return nil, err
			}
			if d := diffCanonical(states[to].objs, got.objs); len(d) > 0 {
				problem(ProblemRoundTrip, m.File, downLine(m), d, "its down section does not restore the schema of version %d: %s", to, engine.DescribeDiffs(d))
				ok = false
			}
		}
		if ok {
			for _, v := range versions {
				m := byVersion[v]
				if _, err := e.Migrate(ctx, scratch, engine.MigrateOptions{To: v}); err != nil {
					problem(ProblemRoundTrip, m.File, 0, nil, "up fails after down: %s", scratchMessage(err, scratch))
					break
				}
				got, err := readSchemaState(ctx, scratch)
				if err != nil {
					return nil, err
				}
				if d := diffCanonical(states[v].objs, got.objs); len(d) > 0 {
					problem(ProblemRoundTrip, m.File, 0, d, "up, down, up gives another schema than up: %s", engine.DescribeDiffs(d))
					break
				}
			}
		}
	}

	// schema.sql against what the migrations produce.
	if o.HasSchema {
		name := o.SchemaName
		if name == "" {
			name = "schema.sql"
		}
		want, line, err := SchemaFromSQL(ctx, string(o.Schema))
		if err != nil {
			problem(ProblemSchema, name, line, nil, "%s: %v", name, err)
		} else if d := diffCanonical(states[e.Head()].objs, want); len(d) > 0 {
			problem(ProblemSchema, name, 0, d, "%s differs from what the migrations produce (%s): run `shoal autogen NAME` to write a migration for it, or `shoal schema --write` if the migrations are right", name, engine.DescribeDiffs(d))
		}
	}
	return rep, nil
}

// scratchMessage words an error on the scratch DB without its temporary path.
func scratchMessage(err error, scratch string) string {
	msg := strings.ReplaceAll(err.Error(), scratch+": ", "")
	msg = strings.ReplaceAll(msg, scratch, "the scratch DB")
	msg = strings.TrimSuffix(msg, "; the database was left as before this step: fix the migration and run again")
	return msg
}

// lineOf pulls "line N" out of a message, 0 if none.
func lineOf(msg string) int {
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0
	}
	j := i + 5
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(msg[i+5 : j])
	return n
}

func downLine(m *engine.Migration) int {
	if len(m.Down) > 0 {
		return m.Down[0].Line
	}
	return 0
}

// migrationText is a migration file's text ("" when unreadable or Go).
func migrationText(fsys fs.FS, m *engine.Migration) string {
	if fsys == nil || m.Kind == engine.KindGo {
		return ""
	}
	data, err := fs.ReadFile(fsys, m.File)
	if err != nil {
		return ""
	}
	return string(sqltext.Normalize(data))
}

// fkRef is a foreign key of a child table to a parent table.
type fkRef struct {
	child, parent string // lower case
	onDelete      string
}

// schemaState is a DB's schema with the facts lint needs.
type schemaState struct {
	objs []engine.SchemaObject
	cols map[string][]string // lower-case table name -> column names
	fks  []fkRef             // ON DELETE CASCADE / SET NULL references
}

// readSchemaState reads the schema of the DB at path (a missing file is an
// empty schema).
func readSchemaState(ctx context.Context, path string) (*schemaState, error) {
	st := &schemaState{objs: []engine.SchemaObject{}, cols: map[string][]string{}}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return st, nil
	}
	db, err := openScratch(path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return readSchemaStateDB(ctx, db)
}

func readSchemaStateDB(ctx context.Context, db *sql.DB) (*schemaState, error) {
	st := &schemaState{cols: map[string][]string{}}
	var err error
	if st.objs, err = engine.CanonicalSchema(ctx, db); err != nil {
		return nil, err
	}
	// Columns and foreign keys of every table, in two queries.
	user := map[string]bool{}
	for _, o := range st.objs {
		if o.Type == "table" {
			user[o.Name] = true
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_schema m, pragma_table_xinfo(m.name) p
		WHERE m.type = 'table' AND p.hidden <> 1 ORDER BY m.name, p.cid`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return nil, err
		}
		if user[t] {
			st.cols[strings.ToLower(t)] = append(st.cols[strings.ToLower(t)], c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = db.QueryContext(ctx, `SELECT m.name, f."table", f.on_delete FROM sqlite_schema m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var child, parent, onDelete string
		if err := rows.Scan(&child, &parent, &onDelete); err != nil {
			return nil, err
		}
		if od := strings.ToUpper(onDelete); user[child] && (od == "CASCADE" || od == "SET NULL" || od == "SET DEFAULT") {
			st.fks = append(st.fks, fkRef{child: strings.ToLower(child), parent: strings.ToLower(parent), onDelete: od})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return st, nil
}

// column is one column of a table.
type column struct {
	name      string
	generated bool // GENERATED ALWAYS AS: not copied by a rebuild
}

// tableColumns lists a table's columns in order (hidden generated columns
// included and marked).
func tableColumns(ctx context.Context, q querier, table string) ([]column, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, hidden FROM pragma_table_xinfo(?) ORDER BY cid`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		var hidden int
		if err := rows.Scan(&c.name, &hidden); err != nil {
			return nil, err
		}
		if hidden == 1 {
			continue // a virtual table's hidden column
		}
		c.generated = hidden == 2 || hidden == 3
		out = append(out, c)
	}
	return out, rows.Err()
}

// SchemaFromSQL runs schema SQL (such as schema.sql) on an empty in-memory
// database and returns its canonical schema. On an error, line is the line
// of the failing statement.
func SchemaFromSQL(ctx context.Context, text string) (objs []engine.SchemaObject, line int, err error) {
	stmts, err := engine.SplitStatements(string(sqltext.Normalize([]byte(text))))
	if err != nil {
		var se *sqltext.SyntaxError
		if errors.As(err, &se) {
			return nil, se.Line, err
		}
		return nil, 0, err
	}
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s.SQL); err != nil {
			return nil, s.Line, fmt.Errorf("line %d: %w", s.Line, err)
		}
	}
	objs, err = engine.CanonicalSchema(ctx, db)
	return objs, 0, err
}

// diffCanonical is DiffSchemas with one more normalisation: a quoted object
// name in a CREATE statement equals the bare name (SQLite's ALTER TABLE ...
// RENAME TO writes `CREATE TABLE "t"` where the migration said `t`).
func diffCanonical(want, got []engine.SchemaObject) []engine.SchemaDiff {
	return engine.DiffSchemas(unquoteNames(want), unquoteNames(got))
}

func unquoteNames(objs []engine.SchemaObject) []engine.SchemaObject {
	out := make([]engine.SchemaObject, len(objs))
	for i, o := range objs {
		o.SQL = unquoteCreateName(engine.NormalizeSQL(o.SQL))
		out[i] = o
	}
	return out
}

// unquoteCreateName removes the quotes around the object name of a CREATE
// statement when the name is a plain identifier.
func unquoteCreateName(s string) string {
	toks := tokenize(s, 1)
	i := createNameIndex(toks)
	if i < 0 || toks[i].Kind != tokIdent || !plainIdent(toks[i].Val) {
		return s
	}
	t := toks[i]
	return s[:t.Start] + t.Val + s[t.End:]
}

// createNameIndex is the index of the object name token of a CREATE
// statement (after CREATE [TEMP|UNIQUE|VIRTUAL] TYPE [IF NOT EXISTS]
// [schema.]), or -1.
func createNameIndex(toks []sqlTok) int {
	if len(toks) == 0 || !toks[0].is("create") {
		return -1
	}
	i := 1
	for i < len(toks) && (toks[i].is("temp") || toks[i].is("temporary") || toks[i].is("unique") || toks[i].is("virtual")) {
		i++
	}
	i++ // TABLE, INDEX, VIEW, TRIGGER
	if i+2 < len(toks) && toks[i].is("if") && toks[i+1].is("not") && toks[i+2].is("exists") {
		i += 3
	}
	if i+2 < len(toks) && toks[i+1].Text == "." {
		i += 2
	}
	if i >= len(toks) || !toks[i].isName() {
		return -1
	}
	return i
}

// plainIdent reports a name that needs no quotes: ASCII letters, digits and
// '_', not starting with a digit, and not a keyword that would change the
// statement.
func plainIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return !sqlKeywords[strings.ToLower(s)]
}

// sqlKeywords are SQLite's keywords (a name equal to one keeps its quotes).
var sqlKeywords = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`abort action add after all alter always analyze and as asc attach autoincrement
before begin between by cascade case cast check collate column commit conflict constraint create cross current
current_date current_time current_timestamp database default deferrable deferred delete desc detach distinct do drop
each else end escape except exclude exclusive exists explain fail filter first following for foreign from full
generated glob group groups having if ignore immediate in index indexed initially inner insert instead intersect
into is isnull join key last left like limit match materialized natural no not nothing notnull null nulls of offset
on or order others outer over partition plan pragma preceding primary query raise range recursive references regexp
reindex release rename replace restrict returning right rollback row rows savepoint select set table temp temporary
then ties to transaction trigger unbounded union unique update using vacuum values view virtual when where window
with without`) {
		m[k] = true
	}
	return m
}()
