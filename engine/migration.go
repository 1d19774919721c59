package engine

import (
	"context"
	"database/sql"
)

// Kind says how a migration step runs.
type Kind int

const (
	// KindSQL is a .sql file run inside the run's transaction.
	KindSQL Kind = iota
	// KindSQLNoTx is a .sql file whose up (or down) section carries
	// "transaction:false": it runs outside any transaction, on a private
	// copy of the DB brought back whole (see runStep).
	KindSQLNoTx
	// KindScript is a .sh or .py file run as a child process with a private
	// copy of the DB as its only argument, brought back whole (see runStep).
	KindScript
	// KindGo is a migration registered from Go; it receives the run's
	// transaction.
	KindGo
)

func (k Kind) String() string {
	switch k {
	case KindSQL:
		return "sql"
	case KindSQLNoTx:
		return "sql (transaction:false)"
	case KindScript:
		return "script"
	case KindGo:
		return "go"
	}
	return "unknown"
}

// GoFunc is the body of a Go migration. It runs inside the run's transaction
// (foreign keys are off, the write lock is held) and must not commit it.
type GoFunc func(ctx context.Context, tx *sql.Tx) error

// GoMigration is a migration written in Go by a program that embeds the
// engine. Down is optional.
type GoMigration struct {
	Version int64
	Name    string
	Up      GoFunc
	Down    GoFunc
}

// Migration is one parsed migration file (or registered Go migration).
type Migration struct {
	Version int64
	// Name is the description part of the file name ("add_users").
	Name string
	// File is the file name inside the migrations directory ("0001_add_users.sql").
	File string
	Kind Kind
	// Up and Down hold the statements of a .sql file, split the way SQLite
	// reads them. Down is nil when the file has no down section.
	Up   []Statement
	Down []Statement
	// UpNoTx / DownNoTx: the section carries "transaction:false".
	UpNoTx   bool
	DownNoTx bool
	// HasDown reports a down section (possibly empty) or a Go down function.
	HasDown bool
	// Script is the file body of a .sh/.py migration.
	Script []byte
	// Interpreter runs a script: "sh" or "python3".
	Interpreter string
	// Path is the absolute path of a script's file on disk, run in place;
	// "" when the migrations have no OS directory (an embedded fs.FS).
	Path string
	// Checksum is the hex SHA-256 of the normalised file text (CRLF -> LF,
	// BOM stripped); for Go migrations, of "go:<version>:<name>".
	Checksum string
	// Go is set for Go migrations.
	Go *GoMigration
	// Files lists every file of the migration (up, down, side files) when
	// it was read from another tool's layout (docs/switching.md); nil in
	// shoal's own layout, where File is the only one.
	Files []string
	// ToolVersion is the version as that tool records it in its history
	// ("1.1" for Flyway's V1_1, diesel's 20240115103000, Prisma's directory
	// name); "" in shoal's own layout.
	ToolVersion string
}

// Reversible reports whether the migration can be undone by `shoal down`.
func (m *Migration) Reversible() bool { return m.HasDown }

// Statement is one SQL statement of a migration section.
type Statement struct {
	// SQL is the statement text, terminated by ';'.
	SQL string
	// Line is the 1-based line in the file where the statement starts.
	Line int
}
