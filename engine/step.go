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

// runStep runs one migration that cannot be rolled back by SQLite (a script,
// a transaction:false section) under a snapshot: snapshot, mark the step in
// the lock file, run it, then record it in history in its own transaction.
// If the step fails the DB is restored from the snapshot at once; if the
// process dies, the next run restores it before anything else (recoverStep).
func (e *Engine) runStep(ctx context.Context, path string, conn *sql.Conn, lk *fileLock, st *dbState, m *Migration, down bool) ([]Applied, error) {
	if !st.managed {
		if err := createHistory(ctx, path, conn, st); err != nil {
			return nil, err
		}
	}
	// Absolute: the next run to find the marker may have another working directory.
	snap, err := filepath.Abs(path + snapshotSuffix)
	if err != nil {
		return nil, err
	}
	if err := takeSnapshot(ctx, conn, snap, e.opts.BusyTimeout); err != nil {
		return nil, &MigrationError{Path: path, Version: m.Version, File: m.File, Down: down,
			Err: fmt.Errorf("cannot take the snapshot %s before this step: %w", snap, err)}
	}
	if err := lk.setMarker(stepMarker{Version: m.Version, Down: down, Snapshot: snap}); err != nil {
		removeSnapshot(snap)
		return nil, &MigrationError{Path: path, Version: m.Version, File: m.File, Down: down, Err: fmt.Errorf("cannot record the step marker: %w", err)}
	}
	start := time.Now()
	var output string
	var stepErr error
	if m.Kind == KindScript {
		output, stepErr = runScript(ctx, m, path, e.opts.ScriptTimeout)
		if stepErr != nil {
			stepErr = &MigrationError{Path: path, Version: m.Version, File: m.File, Down: down, Output: output, Err: stepErr}
		}
	} else {
		stepErr = execStatements(ctx, path, conn, m, down)
	}
	took := time.Since(start)
	if stepErr == nil {
		stepErr = e.commitStep(ctx, path, conn, st, m, down, took, snap)
	}
	if stepErr != nil {
		if rerr := e.undoStep(context.WithoutCancel(ctx), path, conn, lk, snap); rerr != nil {
			return nil, errors.Join(stepErr, rerr)
		}
		return nil, stepErr
	}
	if err := lk.clearMarker(); err != nil {
		return nil, err
	}
	removeSnapshot(snap)
	return []Applied{{Version: m.Version, Name: m.Name, File: m.File, DurationMs: took.Milliseconds()}}, nil
}

// commitStep records a finished step in history, after checking that it
// introduced no foreign-key violations (measured against the snapshot).
func (e *Engine) commitStep(ctx context.Context, path string, conn *sql.Conn, st *dbState, m *Migration, down bool, took time.Duration, snap string) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
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
		before, err := snapshotViolations(ctx, snap, e.opts.BusyTimeout)
		if err != nil {
			return err
		}
		if v := newViolations(after, before); len(v) > 0 {
			return &MigrationError{Path: path, Version: m.Version, File: m.File, Down: down,
				Err: fmt.Errorf("%w introduced by this step, undone: %s", ErrForeignKey, formatViolations(v))}
		}
	}
	stCopy := *st
	if err = recordHistory(ctx, tx, &stCopy, m, down, took); err != nil {
		return sqliteError(path, err)
	}
	if err = syncUserVersion(ctx, tx, &stCopy); err != nil {
		return sqliteError(path, err)
	}
	if err = tx.Commit(); err != nil {
		return lockOrSQLite(path, err)
	}
	st.note([]*Migration{m}, down)
	return nil
}

// snapshotViolations lists the foreign-key violations the DB had before the step.
func snapshotViolations(ctx context.Context, snap string, busy time.Duration) ([]fkViolation, error) {
	db, err := openDB(snap, busy, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return foreignKeyCheck(ctx, db)
}

// undoStep restores the DB from the snapshot and clears the marker. If the
// restore fails the marker stays, so the next run restores before anything.
func (e *Engine) undoStep(ctx context.Context, path string, conn *sql.Conn, lk *fileLock, snap string) error {
	if err := copyPages(ctx, conn, snap, e.opts.BusyTimeout, true); err != nil {
		return &DBError{Path: path, Kind: ErrMigration, Detail: "the step failed and restoring the snapshot " + snap + " failed too", Err: err,
			Hint: "the next shoal run on this DB restores the snapshot before anything else; keep " + snap}
	}
	if err := lk.clearMarker(); err != nil {
		return err
	}
	removeSnapshot(snap)
	return nil
}

// recoverStep finishes the business of a step whose migrator died: if the
// step was recorded in history it completed and the snapshot is dropped;
// otherwise the DB is restored from the snapshot before anything else runs.
func (e *Engine) recoverStep(ctx context.Context, path string, conn *sql.Conn, lk *fileLock) error {
	mk, err := lk.readMarker()
	if err != nil {
		return &DBError{Path: path, Kind: ErrMigration, Detail: "cannot read the step marker", Err: err,
			Hint: "inspect " + lockPath(path)}
	}
	if mk == nil {
		return nil
	}
	done := false
	if st, err := readState(ctx, path, conn); err == nil {
		_, applied := st.applied[mk.Version]
		done = applied != mk.Down
	}
	if done {
		if err := lk.clearMarker(); err != nil {
			return err
		}
		removeSnapshot(mk.Snapshot)
		return nil
	}
	if _, err := os.Stat(mk.Snapshot); err != nil {
		return &DBError{Path: path, Kind: ErrMigration,
			Detail: fmt.Sprintf("a step of version %d was interrupted and its snapshot %s is missing", mk.Version, mk.Snapshot), Err: err,
			Hint: "restore the tenant from a backup, then clear " + lockPath(path)}
	}
	return e.undoStep(ctx, path, conn, lk, mk.Snapshot)
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
