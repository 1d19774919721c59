package schema

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// openScratch opens a scratch DB file of the tooling (one connection,
// SQLite's busy timeout, IMMEDIATE transactions); the caller closes it.
func openScratch(path string, readOnly bool) (*sql.DB, error) {
	var b strings.Builder
	b.WriteString("file:")
	b.WriteString(escapeURIPath(path))
	fmt.Fprintf(&b, "?_pragma=busy_timeout(%d)&_txlock=immediate", (30 * time.Second).Milliseconds())
	if readOnly {
		b.WriteString("&mode=ro")
	}
	db, err := sql.Open("sqlite", b.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// escapeURIPath escapes the characters that would end the path part of a
// SQLite URI filename.
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}
