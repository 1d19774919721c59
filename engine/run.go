package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Migrate brings the DB at path to the target version (head by default).
//
// An already-current DB is checked without the write lock: through this
// handle a DB verified at head costs about one stat(); a fresh handle reads
// the 100-byte header (rollback-journal mode) or two header pragmas (WAL). Otherwise Migrate takes the migrator lock,
// re-reads the history, checks the file (quick_check), optionally backs it
// up, and applies the pending migrations in segments: consecutive
// transactional migrations commit together with their history rows in one
// BEGIN IMMEDIATE transaction; a script or transaction:false step runs alone,
// on a private copy brought back whole (runStep).
func (e *Engine) Migrate(ctx context.Context, path string, o MigrateOptions) (*Result, error) {
	target := e.head
	if o.To > 0 {
		target = o.To
	}
	atHead := target >= e.head
	res := &Result{Path: path, Applied: []Applied{}, Pending: []Applied{}, DryRun: o.DryRun}
	if atHead && !o.DryRun && e.cachedAtHead(path) {
		res.From, res.To = e.head, e.head
		return res, nil
	}
	info, err := inspectFile(path)
	if err != nil {
		return nil, err
	}
	if info.exists && atHead && !o.DryRun && e.headerAtHead(path, info.fp, info.hdr) {
		e.rememberAtHead(path, info.fp)
		res.From, res.To = e.head, e.head
		return res, nil
	}
	exists := info.exists
	if info.missing {
		if o.MustExist {
			return nil, &DBError{Path: path, Kind: ErrNotFound, Hint: "the tenant was removed, or the path is wrong; nothing was created"}
		}
		if o.DryRun {
			// Report without creating the file.
			st := &dbState{applied: map[int64]HistoryRow{}}
			pending, err := e.plan(path, st, target, o)
			if err != nil {
				return nil, err
			}
			res.Pending = appliedList(pending)
			return res, nil
		}
	}

	db, err := openDB(path, e.opts.BusyTimeout, o.DryRun)
	if err != nil {
		return nil, err
	}
	release := sqliteInUse(path) // raw reads of the file must not drop SQLite's locks (fdpark.go)
	defer func() {
		db.Close()
		release()
		// Closing the last connection may checkpoint a WAL: fingerprint after.
		if err == nil && res.To >= e.head && !o.DryRun {
			if info, ierr := inspectFile(path); ierr == nil && info.exists {
				e.rememberAtHead(path, info.fp)
			}
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, openError(path, err)
	}
	defer conn.Close()

	if exists && atHead && !o.DryRun {
		appID, err1 := pragmaInt(ctx, conn, "application_id")
		uv, err2 := pragmaInt(ctx, conn, "user_version")
		if err1 == nil && err2 == nil && appID == shoalAppID && uv == e.headHash {
			res.From, res.To = e.head, e.head
			return res, nil // remembered by the deferred fingerprint, taken after close
		}
	}

	st := &dbState{applied: map[int64]HistoryRow{}}
	if exists {
		if st, err = readState(ctx, path, conn); err != nil {
			return nil, err
		}
	}
	pending, err := e.plan(path, st, target, o)
	if err != nil {
		return nil, err
	}
	res.From, res.To = st.version, st.version
	if o.DryRun {
		res.Pending = appliedList(pending)
		return res, nil
	}
	if len(pending) == 0 && !stepInterrupted(path) {
		if target < st.version {
			return nil, &DBError{Path: path, Kind: ErrMigration, Detail: fmt.Sprintf("--to %d is below the current version %d", target, st.version),
				Hint: "use `shoal down --to` to go back"}
		}
		return res, nil
	}

	// Work is pending: serialise with other migrators, then look again.
	lk, err := acquireLock(ctx, path, e.opts.BusyTimeout)
	if err != nil {
		return nil, err
	}
	defer lk.release()
	if err = e.recoverStep(ctx, path, conn, lk); err != nil {
		return nil, err
	}
	if exists, err = checkFile(path); err != nil {
		return nil, err
	}
	st = &dbState{applied: map[int64]HistoryRow{}}
	if exists {
		if st, err = readState(ctx, path, conn); err != nil {
			return nil, err
		}
	}
	if pending, err = e.plan(path, st, target, o); err != nil {
		return nil, err
	}
	res.From, res.To = st.version, st.version
	if len(pending) == 0 {
		return res, nil // another migrator did the work
	}
	if err = checkWritable(path, exists); err != nil {
		return nil, err
	}
	if exists {
		if err = quickCheck(ctx, path, conn); err != nil {
			return nil, err
		}
		if o.Backup != nil {
			if res.Backup, err = Backup(ctx, path, *o.Backup); err != nil {
				return nil, err
			}
		}
	}
	e.forget(path)
	err = e.apply(ctx, path, conn, lk, st, pending, false, o.PerMigration, res)
	return res, err
}

// apply runs the planned steps in segments, recording each applied (or
// undone) migration in res.
func (e *Engine) apply(ctx context.Context, path string, conn *sql.Conn, lk *fileLock, st *dbState, steps []*Migration, down, perMigration bool, res *Result) error {
	fkOn, err := pragmaInt(ctx, conn, "foreign_keys")
	if err != nil {
		return sqliteError(path, err)
	}
	// Foreign keys off before BEGIN (the pragma is a no-op inside a
	// transaction), so a table rebuild never cascades; restored afterwards.
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return sqliteError(path, err)
	}
	if fkOn == 1 {
		defer conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON")
	}
	for len(steps) > 0 {
		n := segmentLen(steps, down, perMigration)
		seg := steps[:n]
		steps = steps[n:]
		var done []Applied
		if isTransactional(seg[0], down) {
			done, err = e.runTxSegment(ctx, path, conn, st, seg, down)
		} else {
			done, err = e.runStep(ctx, path, conn, lk, st, seg[0], down)
		}
		res.Applied = append(res.Applied, done...)
		res.To = st.version
		if err != nil {
			return err
		}
	}
	return nil
}

// segmentLen is the number of leading steps that commit together.
func segmentLen(steps []*Migration, down, perMigration bool) int {
	if !isTransactional(steps[0], down) || perMigration {
		return 1
	}
	n := 1
	for n < len(steps) && isTransactional(steps[n], down) {
		n++
	}
	return n
}

// isTransactional reports whether a step runs inside the run's transaction.
func isTransactional(m *Migration, down bool) bool {
	switch m.Kind {
	case KindScript:
		return false
	case KindGo:
		return true
	}
	if down {
		return !m.DownNoTx
	}
	return !m.UpNoTx
}

// runTxSegment applies migrations and their history rows in one BEGIN
// IMMEDIATE transaction, checks foreign keys before COMMIT, and rolls back
// everything on any failure.
func (e *Engine) runTxSegment(ctx context.Context, path string, conn *sql.Conn, st *dbState, seg []*Migration, down bool) ([]Applied, error) {
	done, violations, err := e.txSegment(ctx, path, conn, st, seg, down, nil)
	if err == nil && len(violations) > 0 {
		// Tolerate violations the DB already had: measure them on the
		// rolled-back DB and run the segment again.
		var before []fkViolation
		if before, err = foreignKeyCheck(ctx, conn); err != nil {
			return nil, sqliteError(path, err)
		}
		if len(before) > 0 {
			done, violations, err = e.txSegment(ctx, path, conn, st, seg, down, before)
		}
		if err == nil && len(violations) > 0 {
			err = &MigrationError{Path: path, Version: seg[len(seg)-1].Version, File: segmentFiles(seg), Down: down,
				Err: fmt.Errorf("%w introduced by this run, rolled back: %s", ErrForeignKey, formatViolations(violations))}
		}
	}
	if err != nil {
		return nil, err
	}
	return done, nil
}

// txSegment runs one attempt of a transactional segment. It commits only
// when no foreign-key violations beyond allowed remain; otherwise it rolls
// back and returns them.
func (e *Engine) txSegment(ctx context.Context, path string, conn *sql.Conn, st *dbState, seg []*Migration, down bool, allowed []fkViolation) (done []Applied, violations []fkViolation, err error) {
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock=immediate)
	if err != nil {
		return nil, nil, lockOrSQLite(path, err)
	}
	defer func() {
		if err != nil || len(violations) > 0 {
			tx.Rollback()
			done = nil
		}
	}()
	stCopy := *st
	if err = ensureHistory(ctx, tx, &stCopy); err != nil {
		return nil, nil, sqliteError(path, err)
	}
	for _, m := range seg {
		start := time.Now()
		if err = runMigrationTx(ctx, path, tx, m, down); err != nil {
			return nil, nil, err
		}
		took := time.Since(start)
		if err = recordHistory(ctx, tx, &stCopy, m, down, took); err != nil {
			return nil, nil, sqliteError(path, err)
		}
		done = append(done, Applied{Version: m.Version, Name: m.Name, File: m.File, DurationMs: took.Milliseconds()})
	}
	if err = syncUserVersion(ctx, tx, &stCopy); err != nil {
		return nil, nil, sqliteError(path, err)
	}
	after, err := foreignKeyCheck(ctx, tx)
	if err != nil {
		return nil, nil, sqliteError(path, err)
	}
	if violations = newViolations(after, allowed); len(violations) > 0 {
		return nil, violations, nil
	}
	if err = tx.Commit(); err != nil {
		return nil, nil, lockOrSQLite(path, err)
	}
	*st = stCopy
	st.note(seg, down)
	return done, nil, nil
}

// runMigrationTx runs one migration's statements (or Go function) inside tx.
func runMigrationTx(ctx context.Context, path string, tx *sql.Tx, m *Migration, down bool) error {
	if m.Kind == KindGo {
		fn := m.Go.Up
		if down {
			fn = m.Go.Down
		}
		if err := fn(ctx, tx); err != nil {
			return &MigrationError{Path: path, Version: m.Version, File: m.File, Down: down, Err: err}
		}
		return nil
	}
	return execStatements(ctx, path, tx, m, down)
}

// execStatements runs the statements of a section one by one so a failure
// names its number and line.
func execStatements(ctx context.Context, path string, q querier, m *Migration, down bool) error {
	stmts := m.Up
	if down {
		stmts = m.Down
	}
	for i, s := range stmts {
		if _, err := q.ExecContext(ctx, s.SQL); err != nil {
			return &MigrationError{Path: path, Version: m.Version, File: m.File, Statement: i + 1, Line: s.Line,
				SQL: s.SQL, Down: down, Err: err}
		}
	}
	return nil
}

// note updates the state after a committed segment.
func (st *dbState) note(seg []*Migration, down bool) {
	if st.applied == nil {
		st.applied = map[int64]HistoryRow{}
	}
	for _, m := range seg {
		if down {
			delete(st.applied, m.Version)
		} else {
			st.applied[m.Version] = HistoryRow{Version: m.Version, Name: m.Name, Checksum: m.Checksum}
		}
	}
	st.version = 0
	for v := range st.applied {
		if v > st.version {
			st.version = v
		}
	}
}

func segmentFiles(seg []*Migration) string {
	names := make([]string, len(seg))
	for i, m := range seg {
		names[i] = m.File
	}
	return strings.Join(names, ", ")
}

func appliedList(ms []*Migration) []Applied {
	out := make([]Applied, 0, len(ms))
	for _, m := range ms {
		out = append(out, Applied{Version: m.Version, Name: m.Name, File: m.File})
	}
	return out
}

// quickCheck refuses a DB that fails PRAGMA quick_check.
func quickCheck(ctx context.Context, path string, q querier) error {
	rows, err := q.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return sqliteError(path, err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return sqliteError(path, err)
		}
		if s != "ok" {
			msgs = append(msgs, s)
		}
	}
	if err := rows.Err(); err != nil {
		return sqliteError(path, err)
	}
	if len(msgs) > 0 {
		if len(msgs) > 5 {
			msgs = append(msgs[:5], fmt.Sprintf("and %d more", len(msgs)-5))
		}
		return &DBError{Path: path, Kind: ErrCorrupt, Detail: "quick_check: " + strings.Join(msgs, "; "),
			Hint: "restore the tenant from a backup"}
	}
	return nil
}

// openError explains a DB that SQLite cannot open.
func openError(path string, err error) error {
	if strings.Contains(err.Error(), "unable to open") {
		return &DBError{Path: path, Kind: ErrMigration, Detail: "cannot open or create the database file", Err: err,
			Hint: "check that the directory exists and is writable"}
	}
	return sqliteError(path, err)
}

// lockOrSQLite turns SQLITE_BUSY after the busy timeout into ErrLocked.
func lockOrSQLite(path string, err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked") {
		return &DBError{Path: path, Kind: ErrLocked, Detail: "another connection held the write lock past the busy timeout", Err: err,
			Hint: "retry later or raise --busy-timeout"}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return sqliteError(path, err)
}

// checkWritable refuses, before anything is applied, a DB file or directory
// this process cannot write: SQLite would open it read-only without a word
// and fail at the first write.
func checkWritable(path string, exists bool) error {
	const wOK = 2
	if exists {
		if err := syscall.Access(path, wOK); err != nil {
			return &DBError{Path: path, Kind: ErrReadOnly, Detail: "the file is read-only for this user", Err: err,
				Hint: "make it writable by the user shoal runs as (or mount it read-write); nothing was changed"}
		}
	}
	if err := syscall.Access(filepath.Dir(path), wOK); err != nil {
		return &DBError{Path: path, Kind: ErrReadOnly, Detail: "its directory is read-only for this user", Err: err,
			Hint: "SQLite needs to create its journal beside the DB; make the directory writable; nothing was changed"}
	}
	return nil
}
