package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		kind := error(ErrLocked)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			kind = ErrReadOnly
		}
		return nil, &DBError{Path: db, Kind: kind, Detail: "cannot create the lock file " + p, Err: err,
			Hint: "shoal needs write access to the DB's directory (for its lock and SQLite's journal)"}
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f: f, path: p}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, &DBError{Path: db, Kind: ErrLocked, Detail: "flock " + p, Err: err}
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, &DBError{Path: db, Kind: ErrLocked,
				Detail: fmt.Sprintf("another migrator held %s for more than %s", p, timeout),
				Hint:   "wait for it to finish or raise --busy-timeout"}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// release drops the lock.
func (l *fileLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the descriptor releases the flock
		l.f = nil
	}
}

// stepMarker is written to the lock file while a non-transactional step runs.
type stepMarker struct {
	Version  int64
	Down     bool
	Snapshot string
}

// readMarker returns the marker left by a step in progress, if any.
func (l *fileLock) readMarker() (*stepMarker, error) {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(l.f)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, nil
	}
	// Format: "step <version> <up|down> <snapshot path>"
	parts := strings.SplitN(s, " ", 4)
	if len(parts) != 4 || parts[0] != "step" {
		return nil, fmt.Errorf("unrecognised step marker %q in %s", s, l.path)
	}
	v, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("unrecognised step marker %q in %s", s, l.path)
	}
	return &stepMarker{Version: v, Down: parts[2] == "down", Snapshot: parts[3]}, nil
}

// setMarker durably records a step in progress.
func (l *fileLock) setMarker(m stepMarker) error {
	dir := "up"
	if m.Down {
		dir = "down"
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
// a non-transactional step: the next run must take the lock and restore the
// snapshot even if nothing else is pending. A stat on the slow path only.
func stepInterrupted(db string) bool {
	fi, err := os.Stat(lockPath(db))
	return err == nil && fi.Size() > 0
}
