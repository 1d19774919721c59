package engine

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// dsn builds a modernc.org/sqlite DSN for path. Only busy_timeout is set:
// synchronous or journal_mode in the DSN would make every open read the
// whole schema. Transactions begin IMMEDIATE so that the write lock is taken
// at BEGIN, never upgraded half-way (which can fail with SQLITE_BUSY).
func dsn(path string, busy time.Duration, readOnly bool) string {
	var b strings.Builder
	b.WriteString("file:")
	b.WriteString(escapeURIPath(path))
	fmt.Fprintf(&b, "?_pragma=busy_timeout(%d)&_txlock=immediate", busy.Milliseconds())
	if readOnly {
		b.WriteString("&mode=ro")
	}
	return b.String()
}

// escapeURIPath escapes the characters that would end the path part of a
// SQLite URI filename.
func escapeURIPath(p string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(p)
}

// openDB opens path with one connection; the caller owns and closes it.
func openDB(path string, busy time.Duration, readOnly bool) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, busy, readOnly))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// pragmaInt reads an integer pragma such as user_version. Header pragmas do
// not make SQLite parse the schema.
func pragmaInt(ctx context.Context, q querier, name string) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
