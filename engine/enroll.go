package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrEnroll: a DB could not be adopted (its schema matches no version).
var ErrEnroll = errors.New("cannot enroll database")

// EnrollError explains why a DB's schema does not match the migrations.
type EnrollError struct {
	Path    string
	Version int64 // the version compared against (0: none matched)
	Diffs   []SchemaDiff
	Reason  string
}

func (e *EnrollError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: cannot enroll: %s", e.Path, e.Reason)
	for _, d := range e.Diffs {
		fmt.Fprintf(&b, "\n  %s %s %s", d.Change, d.Type, d.Name)
		if d.Want != "" {
			fmt.Fprintf(&b, "\n    migrations: %s", d.Want)
		}
		if d.Got != "" {
			fmt.Fprintf(&b, "\n    database:   %s", d.Got)
		}
	}
	return b.String()
}

func (e *EnrollError) Unwrap() error { return ErrEnroll }

// Enrolled says how a DB was adopted.
type Enrolled struct {
	Path    string `json:"path"`
	Version int64  `json:"version"`
	// Source names the records the version came from: "--version",
	// "schema match", or another tool's table.
	Source string `json:"source"`
}

// foreignRecord is another migration tool's record of a DB's version.
type foreignRecord struct {
	tool    string
	table   string
	version int64
	dirty   bool
}

// Enroll adopts a DB created before shoal: it builds a scratch DB from
// migrations 1..version, compares the two schemas in canonical form and, if
// they match, records 1..version as applied. With version 0 it takes the
// version from another tool's records (fastmigrate's _meta, Rails/dbmate/
// hand-rolled schema_migrations, golang-migrate's, goose's) or else finds
// the version whose schema matches. Other tools' tables are left in place
// and ignored by the comparison.
func (e *Engine) Enroll(ctx context.Context, path string, version int64) (*Enrolled, error) {
	exists, err := checkFile(path)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, &DBError{Path: path, Kind: ErrNotFound, Hint: "enroll adopts an existing database; a new one needs only `shoal migrate`"}
	}
	if version < 0 || version > e.head {
		return nil, &EnrollError{Path: path, Version: version, Reason: fmt.Sprintf("--version %d is not between 1 and head %d", version, e.head)}
	}
	if version > 0 {
		if _, ok := e.byVersion[version]; !ok {
			return nil, &EnrollError{Path: path, Version: version, Reason: fmt.Sprintf("there is no migration %d", version)}
		}
	}
	db, err := openDB(path, e.opts.BusyTimeout, false)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, openError(path, err)
	}
	defer conn.Close()
	lk, err := acquireLock(ctx, path, e.opts.BusyTimeout)
	if err != nil {
		return nil, err
	}
	defer lk.release()
	st, err := readState(ctx, path, conn)
	if err != nil {
		return nil, err
	}
	if st.managed {
		return nil, &EnrollError{Path: path, Reason: fmt.Sprintf("it is already managed by shoal (version %d)", st.version)}
	}
	if err := quickCheck(ctx, path, conn); err != nil {
		return nil, err
	}
	recs, err := foreignRecords(ctx, conn)
	if err != nil {
		return nil, sqliteError(path, err)
	}
	source := "--version"
	ignore := map[string]bool{}
	for _, r := range recs {
		ignore[r.table] = true
		if r.dirty {
			return nil, &EnrollError{Path: path, Version: r.version, Reason: fmt.Sprintf(
				"%s marks version %d dirty: a migration failed half-way under that tool; repair the DB by hand and clear the flag, then enroll", r.tool, r.version)}
		}
		if version == 0 {
			version, source = r.version, r.tool+" ("+r.table+")"
		}
	}
	got, err := DBSchema(ctx, path) // a second, read-only handle: conn is this pool's only connection
	if err != nil {
		return nil, err
	}
	got = withoutTables(got, ignore)
	scratch, err := os.MkdirTemp("", "shoal-enroll-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	candidates := []int64{version}
	if version == 0 {
		source = "schema match"
		candidates = nil
		for i := len(e.migrations) - 1; i >= 0; i-- {
			candidates = append(candidates, e.migrations[i].Version)
		}
	}
	var firstDiff []SchemaDiff
	for _, v := range candidates {
		want, err := e.schemaAt(ctx, filepath.Join(scratch, "v"+strconv.FormatInt(v, 10)+".db"), v)
		if err != nil {
			return nil, err
		}
		diffs := DiffSchemas(want, got)
		if len(diffs) == 0 {
			if err := e.recordEnrollment(ctx, path, conn, st, v); err != nil {
				return nil, err
			}
			return &Enrolled{Path: path, Version: v, Source: source}, nil
		}
		if firstDiff == nil {
			firstDiff = diffs
		}
	}
	if len(candidates) == 1 {
		return nil, &EnrollError{Path: path, Version: version, Diffs: firstDiff,
			Reason: fmt.Sprintf("its schema differs from what migrations 1..%d produce (per %s)", version, source)}
	}
	return nil, &EnrollError{Path: path, Diffs: firstDiff,
		Reason: "its schema matches no migration version; differences from head follow"}
}

// schemaAt builds a scratch DB at version v and returns its schema.
func (e *Engine) schemaAt(ctx context.Context, scratch string, v int64) ([]SchemaObject, error) {
	if _, err := e.Migrate(ctx, scratch, MigrateOptions{To: v}); err != nil {
		return nil, fmt.Errorf("building a scratch DB at version %d: %w", v, err)
	}
	defer e.forget(scratch)
	return DBSchema(ctx, scratch)
}

// recordEnrollment writes history rows 1..v in one transaction.
func (e *Engine) recordEnrollment(ctx context.Context, path string, conn *sql.Conn, st *dbState, v int64) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return lockOrSQLite(path, err)
	}
	defer tx.Rollback()
	if err := ensureHistory(ctx, tx, st); err != nil {
		return sqliteError(path, err)
	}
	for i := range e.migrations {
		m := &e.migrations[i]
		if m.Version > v {
			break
		}
		if err := recordHistory(ctx, tx, st, m, false, 0); err != nil {
			return sqliteError(path, err)
		}
	}
	if err := syncUserVersion(ctx, tx, st); err != nil {
		return sqliteError(path, err)
	}
	e.forget(path)
	return lockOrSQLite(path, tx.Commit())
}

// foreignRecords finds other migration tools' version records.
func foreignRecords(ctx context.Context, conn *sql.Conn) ([]foreignRecord, error) {
	cols := func(table string) (map[string]bool, error) {
		rows, err := conn.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]bool{}
		for rows.Next() {
			var n string
			rows.Scan(&n)
			out[strings.ToLower(n)] = true
		}
		return out, rows.Err()
	}
	var out []foreignRecord
	maxOf := func(q string) (int64, bool) {
		var s sql.NullString
		if err := conn.QueryRowContext(ctx, q).Scan(&s); err != nil || !s.Valid {
			return 0, false
		}
		v, err := strconv.ParseInt(strings.TrimSpace(s.String), 10, 64)
		return v, err == nil
	}
	if c, err := cols("_meta"); err != nil {
		return nil, err
	} else if c["version"] {
		if v, ok := maxOf(`SELECT max(version) FROM _meta`); ok {
			out = append(out, foreignRecord{tool: "fastmigrate", table: "_meta", version: v})
		}
	}
	if c, err := cols("schema_migrations"); err != nil {
		return nil, err
	} else if c["version"] {
		if c["dirty"] {
			var v int64
			var dirty bool
			if err := conn.QueryRowContext(ctx, `SELECT version, dirty FROM schema_migrations LIMIT 1`).Scan(&v, &dirty); err == nil {
				out = append(out, foreignRecord{tool: "golang-migrate", table: "schema_migrations", version: v, dirty: dirty})
			}
		} else if v, ok := maxOf(`SELECT max(CAST(version AS INTEGER)) FROM schema_migrations`); ok {
			out = append(out, foreignRecord{tool: "schema_migrations (Rails, dbmate or hand-rolled)", table: "schema_migrations", version: v})
		}
	}
	if c, err := cols("goose_db_version"); err != nil {
		return nil, err
	} else if c["version_id"] {
		if v, ok := maxOf(`SELECT max(version_id) FROM goose_db_version WHERE is_applied`); ok && v > 0 {
			out = append(out, foreignRecord{tool: "goose", table: "goose_db_version", version: v})
		}
	}
	return out, nil
}

// withoutTables drops other tools' tables (and objects on them).
func withoutTables(objs []SchemaObject, drop map[string]bool) []SchemaObject {
	if len(drop) == 0 {
		return objs
	}
	out := objs[:0:0]
	for _, o := range objs {
		if !drop[o.Name] && !drop[o.Table] {
			out = append(out, o)
		}
	}
	return out
}
