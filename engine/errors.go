package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	sqlite "modernc.org/sqlite"
)

// Sentinel errors. Every error the engine returns for one of these cases
// wraps the sentinel, so callers can test with errors.Is and read the details
// with errors.As on the typed errors below.
var (
	// ErrUnmanaged: the DB has user tables and no shoal history.
	ErrUnmanaged = errors.New("database is not managed by shoal")
	// ErrAhead: the DB's history records a version with no migration file.
	ErrAhead = errors.New("database is ahead of the migrations")
	// ErrChanged: an applied migration's file no longer matches its checksum.
	ErrChanged = errors.New("applied migration changed")
	// ErrOutOfOrder: a pending migration is older than the newest applied one.
	ErrOutOfOrder = errors.New("pending migration is out of order")
	// ErrCorrupt: the file is not a SQLite database or fails quick_check.
	ErrCorrupt = errors.New("database is corrupt or not a SQLite database")
	// ErrNotFound: the DB file does not exist and the caller said it must.
	ErrNotFound = errors.New("database file does not exist")
	// ErrInvalidDir: the migrations directory is invalid.
	ErrInvalidDir = errors.New("invalid migrations directory")
	// ErrMigration: a migration step failed; the DB is as before its segment.
	ErrMigration = errors.New("migration failed")
	// ErrLocked: a lock (the migrator lock, or a SQLite lock held by another
	// connection) could not be taken within the busy timeout; the detail
	// says which.
	ErrLocked = errors.New("database is locked")
	// ErrNoDown: a step on the way down has no down part.
	ErrNoDown = errors.New("migration has no down part")
	// ErrDrifted: the DB's schema differs from what its recorded version
	// should have (someone changed it by hand); reported by verification.
	ErrDrifted = errors.New("database schema drifted from its version")
	// ErrReadOnly: the DB file or its directory is not writable by this process.
	ErrReadOnly = errors.New("database is not writable")
	// ErrForeignKey: the run introduced foreign-key violations.
	ErrForeignKey = errors.New("foreign key violations")
	// ErrHotJournal: a writer was killed mid-transaction and left a hot
	// -journal (or a -wal to recover) that a read-only look cannot roll
	// back; the next read-write open (shoal migrate) rolls it back.
	ErrHotJournal = errors.New("database has an interrupted transaction to roll back")
	// ErrDiskFull: SQLite or the file system ran out of space (SQLITE_FULL,
	// ENOSPC); the run was rolled back.
	ErrDiskFull = errors.New("disk full")
	// ErrTxControl: a transactional section holds BEGIN, COMMIT, END,
	// ROLLBACK, SAVEPOINT or RELEASE (refused when the directory is
	// loaded), or a statement ended the run's transaction while it ran.
	ErrTxControl = errors.New("transaction control in a transactional migration")
	// ErrUnversioned: a .sql, .sh or .py file in the migrations directory
	// has no version, so it would never be applied.
	ErrUnversioned = errors.New("migration file without a version")
	// ErrDuplicateVersion: two migrations have the same version.
	ErrDuplicateVersion = errors.New("two migrations with one version")
	// ErrEmptyMigration: a pending migration's up section has no statement
	// (the template `shoal new` writes); it is never applied as it is.
	ErrEmptyMigration = errors.New("migration has no statement")
	// ErrBadTarget: --to names a version above head, or between versions.
	ErrBadTarget = errors.New("target is not a migration version")
)

// Outcomes as reported in results (contract: `outcome`).
const (
	OutcomeMigrated   = "migrated"
	OutcomeCurrent    = "current"
	OutcomeFailed     = "failed"
	OutcomeUnmanaged  = "unmanaged"
	OutcomeAhead      = "ahead"
	OutcomeChanged    = "changed"
	OutcomeOutOfOrder = "out_of_order"
	OutcomeCorrupt    = "corrupt"
	// OutcomeDrifted extends the contract's list: a DB at its version whose
	// schema differs from what that version should have (workers --verify).
	OutcomeDrifted = "drifted"
)

// Outcome maps an engine error to the outcome reported in results: nil is
// "current" (the caller says "migrated" when something was applied), a
// refusal its own name, anything else "failed".
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeCurrent
	case errors.Is(err, ErrUnmanaged):
		return OutcomeUnmanaged
	case errors.Is(err, ErrAhead):
		return OutcomeAhead
	case errors.Is(err, ErrChanged):
		return OutcomeChanged
	case errors.Is(err, ErrOutOfOrder):
		return OutcomeOutOfOrder
	case errors.Is(err, ErrCorrupt):
		return OutcomeCorrupt
	case errors.Is(err, ErrDrifted):
		return OutcomeDrifted
	}
	return OutcomeFailed
}

// IsRefusal reports whether err is a refusal: the DB was left untouched and
// retrying without an operator's action cannot succeed.
func IsRefusal(err error) bool {
	if errors.Is(err, ErrInterruptedStep) || errors.Is(err, ErrSideFile) {
		return true
	}
	switch Outcome(err) {
	case OutcomeUnmanaged, OutcomeAhead, OutcomeChanged, OutcomeOutOfOrder, OutcomeCorrupt, OutcomeDrifted:
		return true
	}
	return false
}

// DirError is a problem with the migrations directory.
type DirError struct {
	Dir    string // directory as given
	File   string // offending file, if any
	Other  string // second file, for duplicates
	Reason string
	// Kind, when set, is a more precise sentinel than ErrInvalidDir
	// (ErrTxControl, ErrUnversioned, ErrDuplicateVersion); errors.Is
	// matches both.
	Kind error
}

func (e *DirError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "migrations directory %s", e.Dir)
	if e.File != "" {
		fmt.Fprintf(&b, ": %s", e.File)
	}
	if e.Other != "" {
		fmt.Fprintf(&b, " and %s", e.Other)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	return b.String()
}

func (e *DirError) Unwrap() []error {
	if e.Kind != nil {
		return []error{ErrInvalidDir, e.Kind}
	}
	return []error{ErrInvalidDir}
}

// Error is the engine's error about one database: a refusal, a failed
// migration, a backup or restore problem, or an enrollment it refused. It
// says which file, what was found (Detail), what SQLite or the OS said
// (Err) and what to do (Hint), and wraps its sentinels: errors.Is(err,
// Kind) and errors.Is(err, Cause) hold, as does errors.Is with Err's chain.
//
// The fields a kind of failure fills:
//   - every one: Path, Kind, and Detail, Hint, Err when there is something to say;
//   - a failed migration (Kind [ErrMigration], File set): Version, File,
//     Statement and Line (0 when not about one statement), SQL, Down,
//     Output (a script's stdout and stderr), RunRolledBack (nothing of the
//     run remains), Removed (the file the run created was removed again),
//     Cause (a more precise sentinel: [ErrDiskFull], [ErrTxControl]); the
//     DB is left exactly as before the failed segment;
//   - a backup or restore (Op "backup" or "restore", Kind [ErrBackup] or
//     [ErrRestore]): File (the backup file or directory concerned), Cause
//     ([ErrCorrupt], [ErrLocked], [ErrNotFound]);
//   - a refused enrollment (Kind [ErrEnroll]): Version (the version
//     compared against, 0: none matched), From (the tool whose history was
//     read), Diffs (the schema differences), Detail (the reason).
type Error struct {
	Op     string // "backup" or "restore"; "" for everything else
	Path   string // the database file
	File   string // the migration file(s), or the backup file or directory
	Kind   error  // the sentinel (ErrMigration, ErrUnmanaged, ErrBackup, ...)
	Cause  error  // a second, more precise sentinel, may be nil
	Detail string // what was found
	Hint   string // what to do
	Err    error  // underlying cause (SQLite's or the OS's message), may be nil

	Version       int64
	Statement     int // 1-based statement number in the section
	Line          int // the line that statement starts on
	SQL           string
	Down          bool
	Output        string
	RunRolledBack bool
	Removed       bool

	From  string
	Diffs []SchemaDiff
}

func (e *Error) Error() string {
	switch {
	case e.Op != "":
		return e.safetyMessage()
	case e.Kind == ErrEnroll:
		return e.enrollMessage()
	case e.isMigration():
		return e.migrationMessage()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Path, e.Kind)
	e.writeTail(&b)
	return b.String()
}

func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 3)
	for _, err := range []error{e.Kind, e.Cause, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// writeTail ends a message with the detail, the cause and the hint.
func (e *Error) writeTail(b *strings.Builder) {
	if e.Detail != "" {
		fmt.Fprintf(b, ": %s", e.Detail)
	}
	if e.Err != nil {
		fmt.Fprintf(b, ": %v", e.Err)
	}
	if e.Hint != "" {
		fmt.Fprintf(b, " (%s)", e.Hint)
	}
}

// isMigration reports an error about one migration (or one segment's files).
func (e *Error) isMigration() bool { return e.Kind == ErrMigration && e.File != "" }

func (e *Error) migrationMessage() string {
	var b strings.Builder
	dir := "up"
	if e.Down {
		dir = "down"
	}
	fmt.Fprintf(&b, "%s: migration %s (%s) failed", e.Path, e.File, dir)
	if e.Statement > 0 {
		fmt.Fprintf(&b, " at statement %d (line %d)", e.Statement, e.Line)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		fmt.Fprintf(&b, "\n--- output ---\n%s", out)
	}
	switch {
	case e.Removed:
		b.WriteString("; this run was rolled back and the database file it had created was removed")
	case e.RunRolledBack:
		b.WriteString("; this run was rolled back: the database is as it was before the run")
	default:
		b.WriteString("; the database was left as before this step")
	}
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	} else {
		b.WriteString(": fix the migration and run again")
	}
	return b.String()
}

func (e *Error) safetyMessage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s", e.Op, e.Path)
	if e.Kind == ErrRestore {
		b.WriteString(" refused or failed")
	} else {
		b.WriteString(" failed")
	}
	if e.File != "" {
		fmt.Fprintf(&b, ": %s", e.File)
	}
	e.writeTail(&b)
	return b.String()
}

func (e *Error) enrollMessage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: cannot enroll: %s", e.Path, e.Detail)
	for _, d := range e.Diffs {
		fmt.Fprintf(&b, "\n  %s %s %s", d.Change, d.Type, d.Name)
		if d.Want != "" {
			fmt.Fprintf(&b, "\n    migrations: %s", d.Want)
		}
		if d.Got != "" {
			fmt.Fprintf(&b, "\n    database:   %s", d.Got)
		}
	}
	return b.String()
}

// dbError returns err's *Error about a database that is neither a failed
// migration, a backup or restore, nor an enrollment, if any.
func dbError(err error) (*Error, bool) {
	var de *Error
	if errors.As(err, &de) && de.Op == "" && de.Kind != ErrEnroll && !de.isMigration() {
		return de, true
	}
	return nil, false
}

// migrationError returns err's *Error about a failed migration, if any.
func migrationError(err error) (*Error, bool) {
	var me *Error
	if errors.As(err, &me) && me.isMigration() {
		return me, true
	}
	return nil, false
}

// Errors of steps that run on a private copy, and of side files.
var (
	// ErrLiveChanges: a script or transaction:false step ran on a private
	// copy, and every time another connection committed to the DB before
	// the result could be brought back; nothing was changed. Transient:
	// retry when the application is quieter.
	ErrLiveChanges = errors.New("the database changed while the step ran on a copy")
	// ErrInterruptedStep: a step was interrupted in a way no undo can
	// repair without destroying writes committed since (a marker of an
	// earlier shoal that ran steps on the live DB, or an unreadable marker).
	// The DB is left as it is and refused until an operator resolves it.
	ErrInterruptedStep = errors.New("an interrupted step needs an operator")
	// ErrSideFile: a file shoal keeps beside the DB (its lock file) is a
	// symbolic link or not a regular file; shoal neither follows nor
	// changes it.
	ErrSideFile = errors.New("a side file of the database is not a regular file")
)

// Transient reports whether a failure may heal by itself, so that trying
// the same migration on the same DB again later can succeed: the write lock
// held past the busy timeout, SQLite's busy/locked/I/O/full/out-of-memory
// codes, a full disk, an I/O error, an interrupted run, a step that raced
// an application writer (ErrLiveChanges). Everything the
// migrations or the DB decide is deterministic and not transient: a
// migration's SQL error, a constraint or foreign-key violation introduced by
// the run, a script's non-zero exit, a refusal (unmanaged, ahead, changed,
// out of order, corrupt, drifted), a missing DB, an invalid migrations
// directory, a read-only DB, an interrupted step that needs an operator, a
// side file that is not a regular file. An error of no known kind counts as transient
// (it is retried, as every failure was before this classification).
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if IsRefusal(err) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidDir) ||
		errors.Is(err, ErrForeignKey) || errors.Is(err, ErrNoDown) || errors.Is(err, ErrReadOnly) ||
		errors.Is(err, ErrInterruptedStep) || errors.Is(err, ErrSideFile) {
		return false
	}
	if errors.Is(err, ErrLocked) || errors.Is(err, ErrLiveChanges) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6, 7, 10, 13, 14, 15: // BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL
			return true
		}
	}
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EAGAIN, syscall.EINTR, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, e) {
			return true
		}
	}
	if errors.Is(err, ErrMigration) {
		return false // the migration's SQL, a constraint, a script's exit
	}
	return true
}
