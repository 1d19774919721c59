package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/internal/retry"
)

// lockSuffix names the migrator lock beside each DB. It is a separate file
// because closing any descriptor of the DB file itself would drop SQLite's
// POSIX locks held by the same process. The file is never removed: removing
// a lock file others may be waiting on would let two migrators in at once.
const lockSuffix = ".shoal-lock"

// fileLock is the migrator lock of one DB: an exclusive flock on PATH.shoal-lock.
// It serialises migrators across processes and goroutines (flock belongs to
// the open file description, and each acquisition opens its own) without
// holding a SQLite write transaction, so script steps in child processes can
// write the DB while it is held. The file also carries the step marker: the
// version of a non-transactional step in progress, protected by a snapshot.
type fileLock struct {
	f    *os.File
	path string
}

// lockPath is the lock file of a DB.
func lockPath(db string) string { return db + lockSuffix }

// acquireLock takes the migrator lock of db, waiting up to timeout.
func acquireLock(ctx context.Context, db string, timeout time.Duration) (*fileLock, error) {
	p := lockPath(db)
	f, err := openLockFile(p)
	if err != nil {
		if _, ok := dbError(err); ok {
			return nil, err
		}
		kind := error(ErrLocked)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			kind = ErrReadOnly
		}
		return nil, &Error{Path: db, Kind: kind, Detail: "cannot create the lock file " + p, Err: err,
			Hint: "shoal needs write access to the DB's directory (for its lock and SQLite's journal)"}
	}
	deadline := time.Now().Add(timeout)
	wait := retry.Backoff{Initial: time.Millisecond, Max: 64 * time.Millisecond}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if isCurrentLockFile(f, p) {
				return &fileLock{f: f, path: p}, nil
			}
			// The holder removed the file we waited on (a failed first run
			// removes the lock file it created): lock the one there now.
			f.Close()
			if f, err = openLockFile(p); err != nil {
				if _, ok := dbError(err); ok {
					return nil, err
				}
				return nil, &Error{Path: db, Kind: ErrLocked, Detail: "cannot reopen the lock file " + p, Err: err}
			}
			continue
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &Error{Path: db, Kind: ErrLocked, Detail: "flock " + p, Err: err}
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, &Error{Path: db, Kind: ErrLocked,
				Detail: fmt.Sprintf("another migrator held %s for more than %s", p, timeout),
				Hint:   "wait for it to finish or raise Options.BusyTimeout"}
		}
		if err := wait.Wait(ctx); err != nil {
			f.Close()
			return nil, err
		}
	}
}

// isCurrentLockFile reports whether the open lock file f is still the file at
// path p: a lock on a file removed meanwhile excludes nobody.
func isCurrentLockFile(f *os.File, p string) bool {
	held, herr := f.Stat()
	now, nerr := os.Lstat(p)
	return herr == nil && nerr == nil && os.SameFile(held, now)
}

// openLockFile opens (creating it if needed) the lock file p without
// following a symlink, and refuses anything but a regular file: a symlink
// planted at DB.shoal-lock must not make shoal truncate or print its target.
// The error is an *Error wrapping ErrSideFile for such a file.
func openLockFile(p string) (*os.File, error) {
	db := strings.TrimSuffix(p, lockSuffix)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &Error{Path: db, Kind: ErrSideFile, Detail: "the lock file " + p + " is a symbolic link; shoal does not follow it", Err: err,
				Hint: "remove it (shoal creates a regular file there); nothing was changed"}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &Error{Path: db, Kind: ErrSideFile, Detail: "the lock file " + p + " is not a regular file (" + fi.Mode().Type().String() + ")",
			Hint: "remove it (shoal creates a regular file there); nothing was changed"}
	}
	return f, nil
}

// release drops the lock.
func (l *fileLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the descriptor releases the flock
		l.f = nil
	}
}

// stepMarker is written to the lock file while a non-transactional step
// runs. Format (one line): "copy <version> <up|down> <absolute copy path>":
// the step runs on that private copy and the live DB is not touched until
// the result is brought back in one transaction. A marker of an earlier
// shoal, "step <version> <up|down> <snapshot path>", is read into Snapshot:
// that design ran the step on the live DB.
type stepMarker struct {
	Version  int64
	Down     bool
	Copy     string // this design: the private copy the step runs on
	Snapshot string // earlier design: the pre-step snapshot
}

// maxMarker bounds what is read of a lock file.
const maxMarker = 8192

// readMarker returns the marker left by a step in progress, if any. Its
// errors never quote the file's contents.
func (l *fileLock) readMarker() (*stepMarker, error) {
	b := make([]byte, maxMarker+1)
	n, err := l.f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n > maxMarker {
		return nil, fmt.Errorf("%s holds more than %d bytes: not a step marker shoal wrote", l.path, maxMarker)
	}
	s := strings.TrimSpace(string(b[:n]))
	if s == "" {
		return nil, nil
	}
	bad := fmt.Errorf("%s holds %d bytes that are not a step marker shoal wrote", l.path, n)
	parts := strings.SplitN(s, " ", 4)
	if len(parts) != 4 || (parts[0] != "step" && parts[0] != "copy") || (parts[2] != "up" && parts[2] != "down") ||
		!filepath.IsAbs(parts[3]) || strings.ContainsAny(parts[3], "\n\x00") {
		return nil, bad
	}
	v, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || v < 1 {
		return nil, bad
	}
	m := &stepMarker{Version: v, Down: parts[2] == "down"}
	if parts[0] == "copy" {
		m.Copy = parts[3]
	} else {
		m.Snapshot = parts[3]
	}
	return m, nil
}

// setMarker durably records a step in progress.
func (l *fileLock) setMarker(m stepMarker) error {
	dir := "up"
	if m.Down {
		dir = "down"
	}
	if m.Copy != "" {
		return l.write(fmt.Sprintf("copy %d %s %s\n", m.Version, dir, m.Copy))
	}
	return l.write(fmt.Sprintf("step %d %s %s\n", m.Version, dir, m.Snapshot))
}

// clearMarker durably records that no step is in progress.
func (l *fileLock) clearMarker() error { return l.write("") }

func (l *fileLock) write(s string) error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	if _, err := l.f.WriteAt([]byte(s), 0); err != nil {
		return err
	}
	return l.f.Sync()
}

// stepInterrupted reports a step marker left by a migrator that died during
// a non-transactional step: the next run must take the lock and clean up
// (or refuse) even if nothing else is pending. A stat on the slow path only.
func stepInterrupted(db string) bool {
	fi, err := os.Lstat(lockPath(db))
	return err == nil && fi.Size() > 0
}
