package engine

import (
	"context"
	"database/sql"
	"os"
)

// session is one database file during one operation that changes it
// (Migrate's locked part, Down, Accept, Enroll): the migrator lock, then the
// file opened with the engine's driver on one connection, an interrupted
// step recovered, and the state read under the lock. Opened once, locked
// once, closed once; the steps of a run are its methods.
type session struct {
	e    *Engine
	path string
	lk   *fileLock
	db   *sql.DB
	conn *sql.Conn
	q    querier // conn, spending from the run's wait budget (if any)
	st   *dbState
	// fresh: there was no file when the lock was taken (this operation
	// creates it); exists: the file had content when the state was read.
	fresh, exists bool
	inUse         func()
}

// lockSession takes the migrator lock of path and then opens it (so that
// the connection is on the file that is there now: a failed first run of
// another migrator may have removed the file it had created), recovers an
// interrupted step and reads the state. Within a run's wait budget (see
// withBudget) the lock wait spends from it; otherwise it waits up to
// Options.BusyTimeout. The caller closes the session.
func (e *Engine) lockSession(ctx context.Context, path string) (_ *session, err error) {
	s := &session{e: e, path: path}
	budget := budgetFrom(ctx)
	if budget != nil {
		s.lk, err = acquireRunLock(ctx, path, budget)
	} else {
		s.lk, err = acquireLock(ctx, path, e.opts.BusyTimeout)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if _, serr := os.Stat(path); os.IsNotExist(serr) {
		s.fresh = true
	}
	if s.db, err = e.open(path, false); err != nil {
		return nil, err
	}
	s.inUse = sqliteInUse(path) // raw reads of the file must not drop SQLite's locks (fdpark.go)
	if s.conn, err = s.db.Conn(ctx); err != nil {
		return nil, openError(path, err)
	}
	budget.opened(s.conn, e.opts.BusyTimeout)
	s.q = budgeted(s.conn, budget)
	if err = e.recoverStep(ctx, path, s.conn, s.lk); err != nil {
		return nil, err
	}
	return s, s.readState(ctx)
}

// readState (re)reads the history and schema counts under the lock.
func (s *session) readState(ctx context.Context) (err error) {
	s.st = &dbState{applied: map[int64]HistoryRow{}}
	if s.exists, err = checkFile(s.path); err != nil || !s.exists {
		return err
	}
	s.st, err = readState(ctx, s.path, s.q)
	return err
}

// closeDB closes the connection and the pool, keeping the lock: closing
// the last connection may checkpoint a WAL, so a fingerprint of the file is
// taken after closeDB and before unlock.
func (s *session) closeDB() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	if s.inUse != nil {
		s.inUse()
		s.inUse = nil
	}
}

// close closes the DB and releases the migrator lock.
func (s *session) close() {
	s.closeDB()
	if s.lk != nil {
		s.lk.release()
		s.lk = nil
	}
}
