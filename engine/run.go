package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Migrate brings the DB at path to the target version (head by default).
//
// An already-current DB is checked without the write lock: through this
// handle a DB verified at head costs about one stat(); a fresh handle reads
// the 100-byte header (rollback-journal mode) or two header pragmas (WAL).
// Otherwise Migrate takes the migrator lock, opens the DB afresh, re-reads
// the history, checks the file (quick_check), optionally backs it up, and
// applies the pending migrations in segments: consecutive transactional
// migrations commit together with their history rows in one BEGIN
// IMMEDIATE transaction; a script or transaction:false step runs alone,
// on a private copy brought back whole (runStep).
//
// Every wait of the run (SQLite's busy handler, the migrator lock, BEGIN
// IMMEDIATE, COMMIT) spends from one budget of Options.BusyTimeout.
//
// A file that did not exist is created under the migrator lock; if the run
// then fails with nothing applied, the file and the lock file it created
// are removed again.
func (e *Engine) Migrate(ctx context.Context, path string, o MigrateOptions) (*Result, error) {
	target := e.head
	if o.To > 0 {
		if err := e.checkTarget(path, o.To); err != nil {
			return nil, err
		}
		target = o.To
	}
	res := &Result{Path: path, Applied: []Applied{}, Pending: []Applied{}, DryRun: o.DryRun}
	info, done, err := e.migrateFast(path, target, o, res)
	if err != nil {
		return nil, err
	}
	if done {
		return res, nil
	}
	ctx = withBudget(ctx, newWaitBudget(e.opts.BusyTimeout))
	if done, err = e.planUnlocked(ctx, path, info, target, o, res); err != nil {
		return nil, err
	}
	if done {
		return res, nil
	}
	// Work is pending: serialise with other migrators, then look again.
	return e.migrateLocked(ctx, path, o, target, res)
}

// migrateFast is the check of a DB already at head that takes no lock and
// opens no connection: through this handle, a DB verified at head costs
// about one stat(); otherwise the 100-byte header says it (rollback-journal
// mode). done: res says the DB is at head. info is the file's one look.
func (e *Engine) migrateFast(path string, target int64, o MigrateOptions, res *Result) (info fileInfo, done bool, err error) {
	atHead := target >= e.head && !o.DryRun
	if atHead && e.cachedAtHead(path) {
		res.From, res.To = e.head, e.head
		return info, true, nil
	}
	if info, err = inspectFile(path); err != nil {
		return info, false, err
	}
	if info.exists && !info.pending && atHead && e.headerAtHead(path, info.fp, info.hdr) {
		e.rememberAtHead(path, info.fp)
		res.From, res.To = e.head, e.head
		return info, true, nil
	}
	return info, false, nil
}

// planUnlocked plans the run without the migrator lock, read-only in
// intent: a missing file is not created, and the connection to an existing
// one is closed before the lock is taken and never writes. done: nothing
// more to do (a dry run, a DB at head or at its target); else the run goes
// on under the lock (migrateLocked), which looks again.
func (e *Engine) planUnlocked(ctx context.Context, path string, info fileInfo, target int64, o MigrateOptions, res *Result) (done bool, err error) {
	if info.missing {
		if o.MustExist {
			return false, &Error{Path: path, Kind: ErrNotFound, Hint: "the tenant was removed, or the path is wrong; nothing was created"}
		}
		// Plan without creating the file: a dry run, or nothing to do.
		pending, err := e.plan(path, &dbState{applied: map[int64]HistoryRow{}}, target, o)
		if err != nil {
			return false, err
		}
		if o.DryRun || len(pending) == 0 {
			res.Pending = appliedList(pending)
			res.To = wouldReach(pending, 0, o.DryRun)
			return true, nil
		}
		return false, nil
	}
	done, rememberFP, err := e.lookUnlocked(ctx, path, info, target, o, res)
	if rememberFP || err == nil && done && !o.DryRun && res.To >= e.head {
		if info, ierr := inspectFile(path); ierr == nil && info.exists {
			e.rememberAtHead(path, info.fp)
		}
	}
	return done, err
}

// lookUnlocked is planUnlocked's look at an existing file, on a connection
// closed before it returns: done as in planUnlocked; remember: the header
// pragmas say the DB is at head (fingerprint it once closed).
func (e *Engine) lookUnlocked(ctx context.Context, path string, info fileInfo, target int64, o MigrateOptions, res *Result) (done, remember bool, err error) {
	atHead := target >= e.head
	budget := budgetFrom(ctx)
	db, err := openDB(path, e.opts.BusyTimeout, o.DryRun)
	if err != nil {
		return false, false, err
	}
	release := sqliteInUse(path) // raw reads of the file must not drop SQLite's locks (fdpark.go)
	defer func() {
		db.Close()
		release()
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, false, openError(path, err)
	}
	defer conn.Close()
	budget.opened(conn, e.opts.BusyTimeout)
	q := budgeted(conn, budget)
	if info.exists && atHead && !o.DryRun {
		appID, err := pragmaInt(ctx, q, "application_id")
		if err != nil {
			return false, false, sqliteError(path, err)
		}
		uv, err := pragmaInt(ctx, q, "user_version")
		if err != nil {
			return false, false, sqliteError(path, err)
		}
		if appID == shoalAppID && uv == e.headHash {
			res.From, res.To = e.head, e.head
			return true, true, nil // fingerprinted after close: closing may checkpoint a WAL
		}
	}
	st := &dbState{applied: map[int64]HistoryRow{}}
	if info.exists {
		if st, err = readState(ctx, path, q); err != nil {
			return false, false, err
		}
	}
	pending, err := e.plan(path, st, target, o)
	if err != nil {
		return false, false, err
	}
	res.From, res.To = st.version, st.version
	if o.DryRun {
		res.Pending = appliedList(pending)
		res.To = wouldReach(pending, st.version, true)
		return true, false, nil
	}
	if len(pending) == 0 && !stepInterrupted(path) {
		if target < st.version {
			return false, false, &Error{Path: path, Kind: ErrMigration, Detail: fmt.Sprintf("--to %d is below the current version %d", target, st.version),
				Hint: "use Engine.Down to go back"}
		}
		return true, false, nil
	}
	return false, false, nil
}

// migrateLocked is the part of a run under the migrator lock. The DB is
// opened only once the lock is held, so the connection is on the file that
// is there now: a failed first run of another migrator may have removed
// the file it had created.
func (e *Engine) migrateLocked(ctx context.Context, path string, o MigrateOptions, target int64, res *Result) (_ *Result, err error) {
	_, lerr := os.Lstat(lockPath(path))
	lockExisted := lerr == nil
	s, err := e.lockSession(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	defer func() {
		s.closeDB()
		// Closing the last connection may checkpoint a WAL: fingerprint
		// after, still under the lock.
		if err == nil && res.To >= e.head {
			if info, ierr := inspectFile(path); ierr == nil && info.exists {
				e.rememberAtHead(path, info.fp)
			}
		}
	}()
	pending, err := e.plan(path, s.st, target, o)
	if err != nil {
		return nil, err
	}
	res.From, res.To = s.st.version, s.st.version
	if len(pending) == 0 {
		if target < s.st.version {
			return nil, &Error{Path: path, Kind: ErrMigration, Detail: fmt.Sprintf("--to %d is below the current version %d", target, s.st.version),
				Hint: "use Engine.Down to go back"}
		}
		return res, nil // another migrator did the work
	}
	if err = checkWritable(path, s.exists); err != nil {
		return nil, err
	}
	if s.exists {
		if err = quickCheck(ctx, path, s.q); err != nil {
			return nil, err
		}
		if o.Backup != nil {
			if res.Backup, err = Backup(ctx, path, *o.Backup); err != nil {
				if isDiskFull(err) {
					return nil, diskFullError(path, err, "the backup before the run could not be written")
				}
				return nil, err
			}
		}
	}
	e.forget(path)
	if err = s.apply(ctx, pending, applyOptions{perMigration: o.PerMigration}, res); err != nil {
		err = s.explainFailure(ctx, res, err, lockExisted)
	}
	return res, err
}

// explainFailure completes the error of a failed run: a full disk is said
// so, with the space needed; a run of which nothing remains says "this run
// was rolled back"; and a run that created the file removes it again (and
// the lock file it created), leaving nothing that was not there.
func (s *session) explainFailure(ctx context.Context, res *Result, err error, lockExisted bool) error {
	path, conn, lk, fresh := s.path, s.conn, s.lk, s.fresh
	me, ok := err.(*Error)
	if !ok || !me.isMigration() {
		if isDiskFull(err) && !errors.Is(err, ErrDiskFull) {
			return diskFullError(path, err, "")
		}
		return err
	}
	if isDiskFull(me.Err) {
		me.Cause = ErrDiskFull
		me.Hint = "disk full: " + diskFullDetail(path, "") + "; free space on that file system (or raise PRAGMA max_page_count if a migration set one) and run again"
	}
	if len(res.Applied) > 0 || stepInterrupted(path) {
		return err // earlier segments of this run stay applied
	}
	st, rerr := readState(context.WithoutCancel(ctx), path, conn)
	if rerr != nil || st.version != res.From {
		return err
	}
	me.RunRolledBack = true
	if fresh && st.userObjects == 0 && len(st.history) == 0 && removeFresh(context.WithoutCancel(ctx), path, conn) {
		me.Removed = true
		if !lockExisted {
			os.Remove(lk.path) // under the flock; other waiters re-check the file they locked
		}
	}
	return err
}

// removeFresh removes the DB file this run created, when it still holds
// nothing but shoal's empty tables: under the write lock, so that no other
// connection commits between the check and the removal.
func removeFresh(ctx context.Context, path string, conn *sql.Conn) bool {
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return false
	}
	defer tx.Rollback()
	st, err := readState(ctx, path, tx)
	if err != nil || st.userObjects > 0 || len(st.history) > 0 {
		return false
	}
	if err := os.Remove(path); err != nil {
		return false
	}
	for _, side := range []string{"-journal", "-wal", "-shm"} {
		os.Remove(path + side)
	}
	return true
}

// acquireRunLock takes the migrator lock within the run's wait budget, and
// makes sure the file it locked is still the lock file at that path: a
// failed first run removes the lock file it created, and a migrator that
// was waiting on the removed file must lock the new one instead.
func acquireRunLock(ctx context.Context, path string, budget *waitBudget) (*fileLock, error) {
	for {
		start := time.Now()
		lk, err := acquireLock(ctx, path, budget.remaining())
		budget.spend(start)
		if err != nil {
			return nil, err
		}
		held, herr := lk.f.Stat()
		now, nerr := os.Lstat(lk.path)
		if herr == nil && nerr == nil && os.SameFile(held, now) {
			return lk, nil
		}
		lk.release()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// wouldReach is the version a run applying pending would reach from
// version from; for a dry run the result's To says it.
func wouldReach(pending []*Migration, from int64, dryRun bool) int64 {
	if !dryRun || len(pending) == 0 {
		return from
	}
	return max(from, pending[len(pending)-1].Version)
}

// checkTarget refuses a --to that is above head or not a version: a target
// never silently means another version.
func (e *Engine) checkTarget(path string, to int64) error {
	if to > e.head {
		hint := "deploy the migrations up to that version, or leave --to out to migrate to head"
		if e.head > 0 {
			hint = fmt.Sprintf("pass --to %d or less (%d is head, %s), or deploy the migrations up to %d", e.head, e.head, e.byVersion[e.head].File, to)
		}
		return &Error{Path: path, Kind: ErrBadTarget,
			Detail: fmt.Sprintf("--to %d is above the newest migration (head is %d in %s)", to, e.head, e.opts.DirName),
			Hint:   hint + "; nothing was changed"}
	}
	if _, ok := e.byVersion[to]; ok {
		return nil
	}
	var below, above *Migration
	for i := range e.migrations {
		m := &e.migrations[i]
		if m.Version < to {
			below = m
		} else if above == nil {
			above = m
		}
	}
	detail := fmt.Sprintf("--to %d is not the version of any migration", to)
	hint := ""
	switch {
	case below != nil && above != nil:
		detail += fmt.Sprintf(": it lies between %d (%s) and %d (%s)", below.Version, below.File, above.Version, above.File)
		hint = fmt.Sprintf("pass --to %d to stop after %s, or --to %d to include %s", below.Version, below.File, above.Version, above.File)
	case above != nil:
		detail += fmt.Sprintf(": the first migration is %d (%s)", above.Version, above.File)
		hint = fmt.Sprintf("pass --to %d", above.Version)
	}
	return &Error{Path: path, Kind: ErrBadTarget, Detail: detail, Hint: hint + "; nothing was changed"}
}

// apply runs the planned steps in segments, recording each applied (or
// undone) migration in res.
// applyOptions say which way steps run and how they commit.
type applyOptions struct {
	down         bool // undo (down sections), newest first
	perMigration bool // one transaction per migration instead of per segment
}

func (s *session) apply(ctx context.Context, steps []*Migration, o applyOptions, res *Result) error {
	path, conn, st, down, perMigration := s.path, s.conn, s.st, o.down, o.perMigration
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
			done, err = s.runTxSegment(ctx, seg, down)
		} else {
			done, err = s.runStep(ctx, seg[0], down)
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
func (s *session) runTxSegment(ctx context.Context, seg []*Migration, down bool) ([]Applied, error) {
	path, conn := s.path, s.conn
	done, violations, err := s.txSegment(ctx, seg, down, nil)
	if err == nil && len(violations) > 0 {
		// Tolerate violations the DB already had: measure them on the
		// rolled-back DB and run the segment again.
		var before []fkViolation
		if before, err = foreignKeyCheck(ctx, conn); err != nil {
			return nil, sqliteError(path, err)
		}
		if len(before) > 0 {
			done, violations, err = s.txSegment(ctx, seg, down, before)
		}
		if err == nil && len(violations) > 0 {
			err = &Error{Kind: ErrMigration, Path: path, Version: seg[len(seg)-1].Version, File: segmentFiles(seg), Down: down,
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
func (s *session) txSegment(ctx context.Context, seg []*Migration, down bool, allowed []fkViolation) (done []Applied, violations []fkViolation, err error) {
	path, conn, st := s.path, s.conn, s.st
	guard, err := guardTx(conn)
	if err != nil {
		return nil, nil, sqliteError(path, err)
	}
	defer guard.release()
	tx, err := beginTx(ctx, conn) // BEGIN IMMEDIATE (_txlock=immediate), within the run's wait budget
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
		if err = runMigrationTx(ctx, path, tx, m, down, guard); err != nil {
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
	if !guard.open() {
		return nil, nil, endedError(path, seg[len(seg)-1], down, 0, Statement{}, nil)
	}
	if err = guard.commit(ctx, tx); err != nil {
		return nil, nil, lockOrSQLite(path, err)
	}
	*st = stCopy
	st.note(seg, down)
	return done, nil, nil
}

// runMigrationTx runs one migration's statements (or Go function) inside
// tx, checking after each that the transaction is still open.
func runMigrationTx(ctx context.Context, path string, tx *sql.Tx, m *Migration, down bool, guard *txGuard) error {
	if m.Kind == KindGo {
		fn := m.Go.Up
		if down {
			fn = m.Go.Down
		}
		err := fn(ctx, tx)
		if guard.endedByStatement(err) {
			return endedError(path, m, down, 0, Statement{}, err)
		}
		if err != nil {
			return &Error{Kind: ErrMigration, Path: path, Version: m.Version, File: m.File, Down: down, Err: err}
		}
		return nil
	}
	stmts := m.Up
	if down {
		stmts = m.Down
	}
	for i, s := range stmts {
		_, err := tx.ExecContext(ctx, s.SQL)
		if guard.endedByStatement(err) {
			return endedError(path, m, down, i+1, s, err)
		}
		if err != nil {
			return &Error{Kind: ErrMigration, Path: path, Version: m.Version, File: m.File, Statement: i + 1, Line: s.Line,
				SQL: s.SQL, Down: down, Err: err}
		}
	}
	return nil
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
			return &Error{Kind: ErrMigration, Path: path, Version: m.Version, File: m.File, Statement: i + 1, Line: s.Line,
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
		return &Error{Path: path, Kind: ErrCorrupt, Detail: "quick_check: " + strings.Join(msgs, "; "),
			Hint: "restore the tenant from a backup"}
	}
	return nil
}

// openError explains a DB that SQLite cannot open.
func openError(path string, err error) error {
	if strings.Contains(err.Error(), "unable to open") {
		return &Error{Path: path, Kind: ErrMigration, Detail: "cannot open or create the database file", Err: err,
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
		return &Error{Path: path, Kind: ErrLocked, Detail: "another connection held the write lock past the busy timeout", Err: err,
			Hint: "retry later or raise Options.BusyTimeout"}
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
			return &Error{Path: path, Kind: ErrReadOnly, Detail: "the file is read-only for this user", Err: err,
				Hint: "make it writable by the user shoal runs as (or mount it read-write); nothing was changed"}
		}
	}
	if err := syscall.Access(filepath.Dir(path), wOK); err != nil {
		return &Error{Path: path, Kind: ErrReadOnly, Detail: "its directory is read-only for this user", Err: err,
			Hint: "SQLite needs to create its journal beside the DB; make the directory writable; nothing was changed"}
	}
	return nil
}
