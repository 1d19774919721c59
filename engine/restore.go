package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	sqlite "modernc.org/sqlite"
)

// DefaultRestoreBusyTimeout is how long Restore waits for another writer
// before refusing, when RestoreOptions.BusyTimeout is 0.
const DefaultRestoreBusyTimeout = 2 * time.Second

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Backup says where the replaced database is kept (same rules as for
	// Backup). Keep is ignored: a restore never deletes backups.
	Backup BackupOptions
	// BusyTimeout is how long to wait for another writer before refusing.
	// Default DefaultRestoreBusyTimeout.
	BusyTimeout time.Duration
}

// Restore puts the backup file in place of the database at path and returns
// the path where the replaced database was kept ("" when path did not
// exist). It refuses, leaving the database untouched, when the backup is
// not a SQLite database or fails quick_check (ErrCorrupt), and when a
// migrator holds the lock file or another connection holds the write lock
// or (WAL mode) another process has the database open (ErrLocked).
//
// The replaced database is first backed up through SQLite (committed -wal
// content included) into the place o.Backup says; a database SQLite cannot
// read is kept as a raw copy under the same naming scheme. The backup is
// copied beside the database under a temporary name, checked, fsynced and
// renamed over path (atomic: readers see the old or the new file, never a
// mix); stale path-wal, path-shm and path-journal files, which belong to
// the replaced file and would corrupt the new one, are removed just before
// the rename, after the checks above found no one using them; then the
// directory is fsynced.
//
// Restore must not run while this same process has the database open (its
// POSIX locks are invisible to the check, and closing a descriptor drops
// them). Processes that keep a rollback-journal database open without a
// transaction cannot be detected: stop applications before restoring.
func Restore(ctx context.Context, path, backup string, o RestoreOptions) (replaced string, err error) {
	fail := func(file string, cause error, detail, hint string, err error) (string, error) {
		return "", &Error{Op: "restore", Path: path, File: file, Kind: ErrRestore, Cause: cause, Detail: detail, Hint: hint, Err: err}
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultRestoreBusyTimeout
	}
	o.Backup.Keep, o.Backup.KeepFor, o.Backup.ReuseKey = 0, 0, ""

	bst, err := os.Stat(backup)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail(backup, ErrNotFound, "the backup file does not exist", "check the BACKUP argument", nil)
		}
		return fail(backup, nil, "cannot read the backup", "check its permissions", err)
	}
	if !bst.Mode().IsRegular() {
		return fail(backup, nil, "the backup is not a regular file", "pass a .bak file written by `shoal backup`", nil)
	}
	// A live database passed as BACKUP: its newest commits are in its -wal
	// (or a crash left a hot -journal), not in the file that would be copied.
	if side := liveSideFile(backup); side != "" {
		return fail(side, nil, "the backup has a side file: it is a live database whose latest state is not in the file alone; the database was not touched", "take a backup of it with `shoal backup --db BACKUP` and restore that", nil)
	}
	if err := quickCheckFile(ctx, backup); err != nil {
		return fail(backup, ErrCorrupt, "the backup is not a SQLite database or fails quick_check; the database was not touched", "pick another backup", err)
	}
	if same, _ := sameFile(path, backup); same {
		return fail(backup, nil, "the backup is the database itself", "pass a backup file", nil)
	}

	// 1. The migrator lock: no shoal migration may run during the restore.
	lockFile := lockPath(path)
	lf, err := openLockFile(lockFile)
	if err != nil {
		if de, ok := dbError(err); ok {
			return fail(lockFile, nil, de.Detail+"; the database was not touched", de.Hint, err)
		}
		return fail(lockFile, nil, "cannot open the migrator lock file", "check the permissions of the database directory", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN) {
			return fail(lockFile, ErrLocked, "a shoal migrator is working on this database", "wait until it finishes, then restore", err)
		}
		return fail(lockFile, nil, "cannot lock the migrator lock file", "check the file system supports flock", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	if !isCurrentLockFile(lf, lockFile) {
		return fail(lockFile, ErrLocked, "a shoal migrator replaced the lock file while the restore took it", "run the restore again", nil)
	}
	lk := &fileLock{f: lf, path: lockFile}
	marker, _ := lk.readMarker()

	dbDir := filepath.Dir(path)
	removeTempLeftovers(dbDir, filepath.Base(path), ".restore-tmp")
	// renamed: the backup is in place. From then on the kept copy of the
	// replaced database is the only one left and must survive any error.
	renamed := false
	_, statErr := os.Stat(path)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return fail("", nil, "cannot stat the database", "check the path and its permissions", statErr)
	}

	// 2. The write lock, held while the replaced database is backed up.
	if exists {
		replaced, err = keepReplaced(ctx, path, o)
		if err != nil {
			return "", err
		}
		undo := func() {
			if replaced != "" {
				_ = os.Remove(replaced)
			}
		}
		// 3. Nobody else may have it open (WAL) or be in a transaction.
		if who := otherUsers(path); who != "" {
			undo()
			return fail("", ErrLocked, who, "stop the applications using this database, then restore", nil)
		}
		defer func() {
			if err != nil && !renamed {
				undo()
			}
		}()
	}

	// 4. Copy the backup beside the database, check exactly those bytes, fsync.
	tmp, err := createLockedTemp(dbDir, "."+filepath.Base(path)+".*.restore-tmp", 0o600)
	if err != nil {
		return fail(dbDir, nil, "cannot write in the database directory", "make it writable by this user", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if !renamed {
			_ = os.Remove(tmpName)
		}
	}()
	// tmp stays open to the end: its flock keeps a concurrent run's cleanup
	// away (SQLite only reads the file, immutable, and has closed it when
	// this descriptor closes).
	defer tmp.Close()
	if err := copyFileTo(tmp, backup); err != nil {
		return fail(backup, nil, "cannot copy the backup beside the database", "check free space in the database directory", err)
	}
	if err := quickCheckFile(ctx, tmpName); err != nil {
		return fail(backup, ErrCorrupt, "the copy of the backup fails quick_check; the database was not touched", "pick another backup", err)
	}
	if st, err := os.Stat(path); err == nil {
		_ = os.Chmod(tmpName, st.Mode().Perm())
	} else {
		_ = os.Chmod(tmpName, 0o644)
	}
	if err := ctx.Err(); err != nil {
		return fail("", nil, "interrupted; the database was not touched", "run the restore again", err)
	}

	// 5. Stale side files of the replaced database go first, then the rename.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(path+suffix, nil, "cannot remove the replaced database's side file; the database was not touched", "check the permissions of the database directory", err)
		}
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fail(tmpName, nil, "cannot rename the copy over the database; the database was not touched", "check the permissions of the database directory", err)
	}
	renamed = true
	kept := ""
	if replaced != "" {
		kept = " (the replaced database is kept as " + replaced + ")"
	}
	syncErr := restoreSyncDir(dbDir)
	// A step marker left by an interrupted script or transaction:false step
	// is about the replaced database: recovering its snapshot now would undo
	// this restore, so the marker and its snapshot go (even when the fsync
	// above failed: the rename has happened).
	if marker != nil || hasContent(lf) {
		if err := lk.clearMarker(); err != nil {
			return replaced, &Error{Op: "restore", Path: path, File: lockFile, Kind: ErrRestore, Detail: "restored" + kept + ", but the interrupted-step marker could not be cleared; the next migration would roll the database back to that step's snapshot", Hint: "empty " + lockFile + " by hand before migrating", Err: errors.Join(err, syncErr)}
		}
		// Only this database's own snapshot goes: the path in the marker
		// is whatever the lock file says (a moved directory's marker names
		// a file that may now be another database's live snapshot).
		if own, aerr := filepath.Abs(path + snapshotSuffix); marker != nil && aerr == nil && marker.Snapshot == own {
			removeSnapshot(own)
		}
		if own, aerr := filepath.Abs(path + stepCopySuffix); aerr == nil {
			removeStepCopy(own)
		}
	}
	if syncErr != nil {
		return replaced, &Error{Op: "restore", Path: path, File: dbDir, Kind: ErrRestore, Detail: "restored" + kept + ", but the directory could not be fsynced", Hint: "check the disk", Err: syncErr}
	}
	return replaced, nil
}

// restoreSyncDir fsyncs the database directory after the rename (a
// variable so tests can make it fail).
var restoreSyncDir = syncDir

// keepReplaced takes the write lock on the existing database (refusing when
// another connection holds it), backs the database up while holding it,
// checkpoints a WAL database and closes every connection. A database SQLite
// cannot read is kept as a raw copy.
func keepReplaced(ctx context.Context, path string, o RestoreOptions) (string, error) {
	fail := func(file string, cause error, detail, hint string, err error) (string, error) {
		return "", &Error{Op: "restore", Path: path, File: file, Kind: ErrRestore, Cause: cause, Detail: detail, Hint: hint, Err: err}
	}
	db, err := sql.Open("sqlite", safetyDSN(path, fmt.Sprintf("mode=rw&_pragma=busy_timeout(%d)", o.BusyTimeout.Milliseconds())))
	if err != nil {
		return fail("", nil, "cannot open the database", "check its permissions", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail("", nil, "cannot open the database", "check its permissions", err)
	}
	defer conn.Close()
	readable := true
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		if !isNotADB(err) {
			if isBusy(err) {
				return fail("", ErrLocked, "another connection holds the write lock", "stop the writer (or wait for it), then restore", err)
			}
			return fail("", nil, "cannot take the write lock", "check the database and its permissions", err)
		}
		readable = false // not a database: nobody can be writing it
	}
	var replaced string
	if readable {
		replaced, err = Backup(ctx, path, o.Backup)
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return "", &Error{Op: "restore", Path: path, Kind: ErrRestore, Detail: "could not keep the replaced database, so it was not replaced", Hint: "fix the backup problem below, then restore", Err: err}
		}
		if err == nil {
			// Fold the WAL into the main file, so nothing of value is left
			// in the -wal file when it is removed.
			_, _ = conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		}
	}
	if replaced == "" {
		if replaced, err = rawKeep(path, o.Backup); err != nil {
			return "", err
		}
	}
	return replaced, nil
}

// rawKeep keeps a database SQLite cannot read as a byte copy, named like a
// backup.
func rawKeep(path string, o BackupOptions) (string, error) {
	fail := func(file string, cause error, detail, hint string, err error) error {
		return &Error{Op: "restore", Path: path, File: file, Kind: ErrRestore, Cause: cause, Detail: detail, Hint: hint, Err: err}
	}
	return placeBackup(path, o, fail, func(tmpName string) error {
		tmp, err := os.OpenFile(tmpName, os.O_WRONLY, 0)
		if err == nil {
			err = copyFileTo(tmp, path)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fail(filepath.Dir(tmpName), nil, "cannot copy the replaced database", "check free space", err)
		}
		return nil
	})
}

// liveSideFile returns db's -wal if it is not empty, or its -journal if it
// starts with a journal header (a hot journal; journal_mode=PERSIST leaves
// a zeroed one); "" when neither.
func liveSideFile(db string) string {
	if st, err := os.Stat(db + "-wal"); err == nil && st.Size() > 0 {
		return db + "-wal"
	}
	f, err := os.Open(db + "-journal")
	if err != nil {
		return ""
	}
	defer f.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(f, hdr[:]); err == nil && string(hdr[:]) == "\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" {
		return db + "-journal"
	}
	return ""
}

func hasContent(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Size() > 0
}

// copyFileTo copies src into dst and fsyncs dst.
func copyFileTo(dst *os.File, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := io.Copy(dst, in); err != nil {
		return err
	}
	return dst.Sync()
}

// otherUsers reports (as a sentence) another process that has the database
// open in WAL mode (a read lock on the -shm "DMS" byte, held by every WAL
// connection) or is inside a transaction (a lock in the PENDING..SHARED byte
// range of the main file); "" when none is seen. F_GETLK does not see this
// process's own locks; the descriptors are opened read-only and only
// queried, and this process holds no SQLite connection to the database
// when it is called.
func otherUsers(path string) string {
	if pid := lockHolder(path+"-shm", 120+8, 1); pid != 0 {
		return fmt.Sprintf("another process (pid %d) has the database open", pid)
	}
	if pid := lockHolder(path, 0x40000000, 512+2); pid != 0 {
		return fmt.Sprintf("another process (pid %d) is in a transaction on the database", pid)
	}
	return ""
}

// lockHolder returns the pid of a process holding a POSIX lock overlapping
// [start, start+n) of file, 0 if none (or the file is missing).
func lockHolder(file string, start, n int64) int {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: start, Len: n}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0
	}
	if lk.Type == syscall.F_UNLCK {
		return 0
	}
	if lk.Pid == 0 {
		return -1
	}
	return int(lk.Pid)
}

// isBusy reports SQLITE_BUSY or SQLITE_LOCKED (any extended code).
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6:
			return true
		}
	}
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked")
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
