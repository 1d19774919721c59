package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrEnroll: a DB could not be adopted (its schema matches no version).
var ErrEnroll = errors.New("cannot enroll database")

// Enrolled says how a DB was adopted.
type Enrolled struct {
	Path    string `json:"path"`
	Version int64  `json:"version"`
	// Source names the records the version came from: "--version",
	// "schema match", or another tool's table.
	Source string `json:"source"`
	// From names the tool whose history was taken over, "" when none.
	From string `json:"from"`
}

// Enroll adopts a DB created before shoal: it builds a scratch DB from
// migrations 1..version, compares the two schemas in canonical form and, if
// they match, records 1..version as applied. With version 0 it takes the
// version from another tool's history (see EnrollWith) or else finds the
// version whose schema matches. Other tools' tables are left in place and
// ignored by the comparison.
func (e *Engine) Enroll(ctx context.Context, path string, version int64) (*Enrolled, error) {
	return e.EnrollWith(ctx, path, EnrollOptions{Version: version})
}

// EnrollWith is Enroll with options: o.From names the tool whose history to
// take over (detected from the tables present when empty): fastmigrate's
// _meta, golang-migrate's schema_migrations (a dirty version is refused),
// dbmate's and Rails' schema_migrations, goose's goose_db_version, diesel's
// __diesel_schema_migrations, sqlx's _sqlx_migrations (failed rows refused,
// checksums compared), Flyway's flyway_schema_history (failed rows refused,
// checksums compared), Prisma's _prisma_migrations (unfinished or
// rolled-back migrations refused, checksums compared) and Alembic's
// alembic_version through o.AlembicMap. The history must name versions the
// migrations have, without gaps; the schema must still equal what
// migrations 1..N produce.
func (e *Engine) EnrollWith(ctx context.Context, path string, o EnrollOptions) (*Enrolled, error) {
	version := o.Version
	exists, err := checkFile(path)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, &Error{Path: path, Kind: ErrNotFound, Hint: "enroll adopts an existing database; a new one needs only Engine.Migrate"}
	}
	if version < 0 || version > e.head {
		return nil, &Error{Kind: ErrEnroll, Path: path, Version: version, Detail: fmt.Sprintf("--version %d is not between 1 and head %d", version, e.head)}
	}
	if version > 0 {
		if _, ok := e.byVersion[version]; !ok {
			return nil, &Error{Kind: ErrEnroll, Path: path, Version: version, Detail: fmt.Sprintf("there is no migration %d", version)}
		}
	}
	s, err := e.lockSession(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	st, conn := s.st, s.conn
	if st.managed {
		return nil, &Error{Kind: ErrEnroll, Path: path, Detail: fmt.Sprintf("it is already managed by shoal (version %d)", st.version)}
	}
	if err := quickCheck(ctx, path, conn); err != nil {
		return nil, err
	}
	source, from := "--version", ""
	if version == 0 || o.From != "" {
		h, err := e.readForeignHistory(ctx, path, conn, o)
		if err != nil {
			return nil, err
		}
		if h == nil && o.requireHistory {
			return nil, &Error{Kind: ErrEnroll, Path: path, Detail: "it has tables but no other migration tool's history table to take over: adopt it by its schema with `shoal enroll`"}
		}
		if h != nil {
			from = h.tool
			if version > 0 && version != h.version() {
				return nil, &Error{Kind: ErrEnroll, Path: path, Version: version, From: h.tool, Detail: fmt.Sprintf(
					"--version %d differs from %s, which says %d: leave --version out to take the tool's position, or --from out to check the schema at %d", version, h.source(), h.version(), version)}
			}
			if h.version() == 0 {
				return nil, &Error{Kind: ErrEnroll, Path: path, From: h.tool, Detail: fmt.Sprintf(
					"%s records no applied migration, but the database has tables: migrate it with that tool first, or enroll with --version after checking its schema", h.source())}
			}
			version, source = h.version(), h.source()
		}
	}
	got, err := DBSchema(ctx, path) // a second, read-only handle: conn is this pool's only connection
	if err != nil {
		return nil, err
	}

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
		want, err := e.SchemaAt(ctx, v)
		if err != nil {
			return nil, err
		}
		diffs := DiffSchemas(want, WithoutForeign(got, want))
		if len(diffs) == 0 {
			if err := e.recordEnrollment(ctx, path, conn, st, v); err != nil {
				return nil, err
			}
			return &Enrolled{Path: path, Version: v, Source: source, From: from}, nil
		}
		if firstDiff == nil {
			firstDiff = diffs
		}
	}
	if len(candidates) == 1 {
		return nil, &Error{Kind: ErrEnroll, Path: path, Version: version, From: from, Diffs: firstDiff,
			Detail: fmt.Sprintf("its schema differs from what migrations 1..%d produce (per %s)", version, source)}
	}
	return nil, &Error{Kind: ErrEnroll, Path: path, Diffs: firstDiff,
		Detail: "its schema matches no migration version; differences from head follow"}
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
