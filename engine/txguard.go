package engine

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"

	sqlite "modernc.org/sqlite"
)

// txGuard watches the run's transaction while a transactional segment runs,
// as a defence behind the refusal of transaction control at load time (and
// for Go migrations, which no loader reads): SQLite's commit hook refuses
// every commit except shoal's own (SQLite then rolls the transaction back),
// and the rollback hook notes a transaction ended by a statement. After
// each statement the segment checks that its transaction is still open, so
// a COMMIT, END or ROLLBACK inside a migration fails the segment cleanly
// instead of committing half of it or running the rest in autocommit.
type txGuard struct {
	conn       *sql.Conn
	hooked     bool
	ours       atomic.Bool // shoal's COMMIT is under way
	vetoed     atomic.Bool // a commit other than shoal's was refused (and so rolled back)
	rolledBack atomic.Bool // the transaction was rolled back
}

// hookConn is what modernc.org/sqlite's connection offers.
type hookConn interface {
	RegisterCommitHook(sqlite.CommitHookFn)
	RegisterRollbackHook(sqlite.RollbackHookFn)
}

// guardTx installs the hooks on conn; release removes them.
func guardTx(conn *sql.Conn) (*txGuard, error) {
	g := &txGuard{conn: conn}
	err := conn.Raw(func(dc any) error {
		h, ok := dc.(hookConn)
		if !ok {
			return nil // another driver: no guard, the load-time refusal stays
		}
		h.RegisterCommitHook(func() int32 {
			if g.ours.Load() {
				return 0
			}
			g.vetoed.Store(true)
			return 1 // turn the COMMIT into a ROLLBACK
		})
		h.RegisterRollbackHook(func() { g.rolledBack.Store(true) })
		g.hooked = true
		return nil
	})
	return g, err
}

// release removes the hooks.
func (g *txGuard) release() {
	if g == nil || !g.hooked {
		return
	}
	g.conn.Raw(func(dc any) error {
		h := dc.(hookConn)
		h.RegisterCommitHook(nil)
		h.RegisterRollbackHook(nil)
		return nil
	})
}

// open reports that the segment's transaction is still open.
func (g *txGuard) open() bool { return g == nil || !g.vetoed.Load() && !g.rolledBack.Load() }

// endedByStatement reports that the statement that just ran (and returned
// stmtErr) ended the transaction itself: it tried to commit, or rolled back
// without failing. A statement that fails and makes SQLite roll the
// transaction back on its own (SQLITE_FULL, SQLITE_IOERR, ON CONFLICT
// ROLLBACK) is an ordinary failure.
func (g *txGuard) endedByStatement(stmtErr error) bool {
	if g == nil {
		return false
	}
	return g.vetoed.Load() || g.rolledBack.Load() && stmtErr == nil
}

// commit lets shoal's own COMMIT through.
func (g *txGuard) commit(ctx context.Context, tx *sql.Tx) error {
	if g != nil {
		g.ours.Store(true)
		defer g.ours.Store(false)
	}
	return commitTx(ctx, tx)
}

// endedError says that a migration ended the run's transaction.
func endedError(path string, m *Migration, down bool, stmt int, s Statement, err error) error {
	what := "a statement"
	if s.SQL != "" {
		what = fmt.Sprintf("%q", firstWord(s.SQL))
	}
	cause := fmt.Errorf("%w: %s ended the run's transaction (SQLite: %v); nothing of this segment was committed", ErrTxControl, what, err)
	if err == nil {
		cause = fmt.Errorf("%w: %s ended the run's transaction; nothing of this segment was committed", ErrTxControl, what)
	}
	return &Error{Kind: ErrMigration, Path: path, Version: m.Version, File: m.File, Statement: stmt, Line: s.Line, SQL: s.SQL, Down: down,
		Err: cause, Cause: ErrTxControl,
		Hint: "remove BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT and RELEASE from the migration (shoal runs it in its own transaction), or mark its section `transaction:false`"}
}
