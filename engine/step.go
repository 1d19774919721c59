package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stepAttempts bounds how many times a step is run again on a fresh copy
// when the live DB changed while it ran (each attempt costs two copies).
const stepAttempts = 3

// errLiveChanged: the live DB changed between the copy and the copy-back.
var errLiveChanged = errors.New("the database changed while the step ran on a copy")

// runStep runs one migration that SQLite cannot roll back (a script, a
// transaction:false section) without ever writing the live DB until it has
// fully succeeded, and never over another connection's commit:
//
//  1. under the migrator lock, with shoal's tables created, note the live
//     DB's change token (liveWatch), then copy the DB with SQLite's online
//     backup API to a private file beside it (PATH.shoal-step);
//  2. record the marker "a step runs on copy X" in the lock file, run the
//     step on the copy, then check foreign keys and record the history row
//     on the copy in one transaction;
//  3. copy the result back into the live DB through SQLite, in one write
//     transaction, only if the live DB did not change since step 1 (checked
//     while that write transaction holds SQLite's write lock). If it did
//     change, nothing is written and the whole step is tried again on a
//     fresh copy, up to stepAttempts times, then ErrLiveChanges.
//
// A failed step leaves the live DB untouched (the copy is deleted); a killed
// migrator leaves at most the copy and the marker, which the next run
// deletes (recoverStep). Nothing is ever restored over the live DB.
func (s *session) runStep(ctx context.Context, m *Migration, down bool) ([]Applied, error) {
	path, conn, st := s.path, s.conn, s.st
	if !st.managed {
		if err := createHistory(ctx, path, conn, st); err != nil {
			return nil, err
		}
	}
	// Absolute: the next run to find the marker may have another working directory.
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		took, err := s.stepOnCopy(ctx, abs, m, down)
		if err == nil {
			st.note([]*Migration{m}, down)
			return []Applied{{Version: m.Version, Name: m.Name, File: m.File, DurationMs: took.Milliseconds()}}, nil
		}
		if !errors.Is(err, errLiveChanged) {
			return nil, err
		}
		if attempt == stepAttempts {
			return nil, &Error{Path: path, Kind: ErrLiveChanges,
				Detail: fmt.Sprintf("%s ran %d times on a private copy and each time the application committed to the database before the result could be brought back; nothing was changed", m.File, attempt),
				Hint:   "retry when the application is quieter"}
		}
	}
}

// stepOnCopy is one attempt of runStep.
func (s *session) stepOnCopy(ctx context.Context, abs string, m *Migration, down bool) (took time.Duration, err error) {
	e, path, conn, lk := s.e, s.path, s.conn, s.lk
	fail := func(err error) error {
		return &Error{Kind: ErrMigration, Path: path, Version: m.Version, File: m.File, Down: down, Err: err}
	}
	// Raw reads of the DB file during the step are closed after it, when
	// this process's connections hold no lock (rollback mode, idle).
	release := sqliteInUse(path)
	defer release()
	w, err := newLiveWatch(ctx, path, conn, e.opts.BusyTimeout)
	if err != nil {
		return 0, err
	}
	defer w.close()
	if err := w.mark(ctx); err != nil {
		return 0, lockOrSQLite(path, err)
	}
	cp := abs + stepCopySuffix
	if err := makeStepCopy(ctx, path, conn, cp, e.opts.BusyTimeout); err != nil {
		return 0, fail(fmt.Errorf("cannot copy the database to %s before this step (the database was not changed): %w", cp, err))
	}
	if err := lk.setMarker(stepMarker{Version: m.Version, Down: down, Copy: cp}); err != nil {
		removeStepCopy(cp)
		return 0, fail(fmt.Errorf("cannot record the step marker (the database was not changed): %w", err))
	}
	// The copy goes first, then the marker: a kill in between leaves a
	// marker whose copy is already gone, which the next run just clears.
	defer func() {
		removeStepCopy(cp)
		if cerr := lk.clearMarker(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	cdb, err := e.open(cp, false) // the engine's driver: application functions
	if err != nil {
		return 0, fail(err)
	}
	defer cdb.Close()
	cconn, err := cdb.Conn(ctx)
	if err != nil {
		return 0, fail(err)
	}
	defer cconn.Close()
	if _, err := cconn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return 0, fail(err)
	}

	start := time.Now()
	var stepErr error
	if m.Kind == KindScript {
		var output string
		output, stepErr = runScript(ctx, m, cp, abs, e.opts.ScriptTimeout)
		if stepErr != nil {
			stepErr = &Error{Kind: ErrMigration, Path: path, Version: m.Version, File: m.File, Down: down, Output: output, Err: unchanged(stepErr)}
		}
	} else {
		var q querier = cconn
		if stepStatementHook != nil {
			q = &hookedQuerier{querier: cconn}
		}
		stepErr = execStatements(ctx, path, q, m, down)
		if me, ok := migrationError(stepErr); ok {
			me.Err = unchanged(me.Err)
		}
	}
	took = time.Since(start)
	if stepErr != nil {
		return 0, stepErr
	}
	if err := s.commitStepOnCopy(ctx, cconn, m, down, took); err != nil {
		return 0, err
	}
	cconn.Close()
	if err := cdb.Close(); err != nil { // folds a WAL into the copy's file
		return 0, fail(unchanged(err))
	}
	if err := copyBack(ctx, conn, cp, e.opts.BusyTimeout, w); err != nil {
		if errors.Is(err, errLiveChanged) {
			return 0, err
		}
		return 0, fail(fmt.Errorf("the step succeeded on a copy but bringing it into the database failed (the database was not changed): %w", lockOrSQLite(path, err)))
	}
	return took, nil
}

// stepStatementHook, when set (tests only), runs after each statement of a
// transaction:false step, on the copy.
var stepStatementHook func(n int)

type hookedQuerier struct {
	querier
	n int
}

func (h *hookedQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := h.querier.ExecContext(ctx, query, args...)
	h.n++
	stepStatementHook(h.n)
	return r, err
}

// unchanged adds to a step's error that the live DB was not touched.
func unchanged(err error) error {
	return fmt.Errorf("%w [the step ran on a private copy; the database was not changed]", err)
}

// commitStepOnCopy checks that the step introduced no foreign-key
// violations (measured against the live DB, which is still as before the
// step) and records its history row and user_version fingerprint, on the
// copy, in one transaction.
func (s *session) commitStepOnCopy(ctx context.Context, cconn *sql.Conn, m *Migration, down bool, took time.Duration) (err error) {
	path, live, st := s.path, s.conn, s.st
	tx, err := cconn.BeginTx(ctx, nil)
	if err != nil {
		return lockOrSQLite(path, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	after, err := foreignKeyCheck(ctx, tx)
	if err != nil {
		return sqliteError(path, err)
	}
	if len(after) > 0 {
		before, err := foreignKeyCheck(ctx, live)
		if err != nil {
			return sqliteError(path, err)
		}
		if v := newViolations(after, before); len(v) > 0 {
			return &Error{Kind: ErrMigration, Path: path, Version: m.Version, File: m.File, Down: down,
				Err: unchanged(fmt.Errorf("%w introduced by this step: %s", ErrForeignKey, formatViolations(v)))}
		}
	}
	stCopy := *st
	if err = recordHistory(ctx, tx, &stCopy, m, down, took); err != nil {
		return sqliteError(path, err)
	}
	if err = syncUserVersion(ctx, tx, &stCopy); err != nil {
		return sqliteError(path, err)
	}
	return lockOrSQLite(path, tx.Commit())
}

// recoverStep finishes the business of a step whose migrator died, under
// the migrator lock and before anything else runs. A step of this design
// ran on a private copy: the copy and the marker are deleted, nothing is
// restored (the live DB has the step, committed with its history row by
// the copy-back, or does not have it at all). A marker of the earlier
// design names a pre-step snapshot that was meant to be copied back over the
// DB: doing so would destroy every write committed since, so the DB is left
// as it is and refused (ErrInterruptedStep) until an operator decides.
// Temporary files of killed backups and restores beside the DB go too.
func (e *Engine) recoverStep(ctx context.Context, path string, conn *sql.Conn, lk *fileLock) error {
	removeTempLeftovers(filepath.Dir(path), filepath.Base(path), ".restore-tmp")
	removeTempLeftovers(filepath.Dir(path), filepath.Base(path), ".bak-tmp")
	own, aerr := filepath.Abs(path + stepCopySuffix)
	mk, err := lk.readMarker()
	if err != nil {
		return &Error{Path: path, Kind: ErrInterruptedStep, Detail: "the step marker in " + lk.path + " cannot be read", Err: err,
			Hint: "inspect that file: shoal writes only `copy VERSION up|down PATH` there; the database was left as it is; empty the file once you know no step is half-done"}
	}
	if mk == nil {
		if aerr == nil {
			removeStepCopy(own) // a copy whose marker was never written
		}
		return nil
	}
	if mk.Copy != "" {
		if aerr == nil {
			removeStepCopy(own)
		}
		// Only this DB's own copy is deleted: a moved directory's marker
		// names a path that may now be another DB's copy in use.
		return lk.clearMarker()
	}
	// A snapshot marker of an earlier shoal.
	done := false
	if st, err := readState(ctx, path, conn); err == nil {
		_, applied := st.applied[mk.Version]
		done = applied != mk.Down
	}
	if done {
		if err := lk.clearMarker(); err != nil {
			return err
		}
		if snapOwn, err := filepath.Abs(path + snapshotSuffix); err == nil && snapOwn == mk.Snapshot {
			removeSnapshot(mk.Snapshot)
		}
		return nil
	}
	dir := "up"
	if mk.Down {
		dir = "down"
	}
	return &Error{Path: path, Kind: ErrInterruptedStep,
		Detail: fmt.Sprintf("the %s step of version %d was interrupted by an earlier shoal, which ran steps on the live database: the database may hold part of that step; its pre-step snapshot is %s; restoring it would discard every write committed since, so the database was left as it is and no migration runs on it", dir, mk.Version, mk.Snapshot),
		Hint:   fmt.Sprintf("inspect the database; then either `shoal restore --db %s %s` (back to before the step; writes since are lost, the replaced DB is kept as a backup), or keep the database as it is: delete the snapshot and empty %s (`: > %s`); then migrate again", path, mk.Snapshot, lk.path, lk.path)}
}

// createHistory creates shoal's tables in their own transaction, for a step
// that runs outside one.
func createHistory(ctx context.Context, path string, conn *sql.Conn, st *dbState) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return lockOrSQLite(path, err)
	}
	if err := ensureHistory(ctx, tx, st); err != nil {
		tx.Rollback()
		return sqliteError(path, err)
	}
	if err := syncUserVersion(ctx, tx, st); err != nil {
		tx.Rollback()
		return sqliteError(path, err)
	}
	return lockOrSQLite(path, tx.Commit())
}

// dbPerm is the permission bits of the DB file (0600 if it cannot be read:
// never wider than the DB's).
func dbPerm(path string) os.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return 0o600
}
