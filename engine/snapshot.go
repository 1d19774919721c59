package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"modernc.org/sqlite"
)

// snapshotSuffix names the snapshot taken just before a step that cannot be
// rolled back (a script, a transaction:false section).
const snapshotSuffix = ".shoal-snapshot"

// onlineBackuper is what modernc.org/sqlite's driver connection offers for
// SQLite's online backup API.
type onlineBackuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
	NewRestore(srcURI string) (*sqlite.Backup, error)
}

// copyPages copies a whole database with SQLite's online backup API between
// the main DB of conn and the file at other: into other (restore=false) or
// from other into conn's DB (restore=true). The copy is page for page,
// consistent, and includes what is committed in a WAL; a restore goes
// through SQLite's pager under its write lock, so connections other
// processes hold on the DB stay valid.
func copyPages(ctx context.Context, conn *sql.Conn, other string, busy time.Duration, restore bool) error {
	return conn.Raw(func(dc any) error {
		b, ok := dc.(onlineBackuper)
		if !ok {
			return fmt.Errorf("the SQLite driver does not offer the online backup API")
		}
		var bk *sqlite.Backup
		var err error
		if restore {
			bk, err = b.NewRestore(dsn(other, busy, true))
		} else {
			bk, err = b.NewBackup(dsn(other, busy, false))
		}
		if err != nil {
			return err
		}
		for {
			if err := ctx.Err(); err != nil {
				bk.Finish()
				return err
			}
			more, err := bk.Step(1024)
			if err != nil {
				bk.Finish()
				return err
			}
			if !more {
				break
			}
		}
		return bk.Finish()
	})
}

// takeSnapshot writes a consistent copy of the DB behind conn to dst (which
// must not be in use) and fsyncs it.
func takeSnapshot(ctx context.Context, conn *sql.Conn, dst string, busy time.Duration) error {
	for _, p := range []string{dst, dst + "-journal", dst + "-wal", dst + "-shm"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := copyPages(ctx, conn, dst, busy, false); err != nil {
		os.Remove(dst)
		return err
	}
	return syncFileAndDir(dst)
}

// syncFileAndDir fsyncs a file and the directory that holds its name.
func syncFileAndDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeSnapshot deletes a snapshot once it is no longer needed.
func removeSnapshot(p string) {
	for _, s := range []string{p, p + "-journal", p + "-wal", p + "-shm"} {
		os.Remove(s)
	}
}

// stepCopySuffix names the private copy a script or transaction:false step
// runs on, beside the DB (same file system, so the copy-back is local).
const stepCopySuffix = ".shoal-step"

// makeStepCopy writes a consistent copy of the DB behind conn (path) to cp.
// Leftovers at cp (and its side files) are removed first; cp is created
// afresh with O_EXCL|O_NOFOLLOW (a planted symlink cannot redirect it) and
// the DB's own permission bits, then filled through SQLite's online backup
// API. The copy is scratch: it is not fsynced, and a crash just deletes it.
func makeStepCopy(ctx context.Context, path string, conn *sql.Conn, cp string, busy time.Duration) error {
	removeStepCopy(cp)
	perm := dbPerm(path)
	f, err := os.OpenFile(cp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	err = f.Chmod(perm) // the umask may have narrowed it: never wider, but exactly the DB's
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeStepCopy(cp)
		return err
	}
	if err := copyPages(ctx, conn, cp, busy, false); err != nil {
		removeStepCopy(cp)
		return err
	}
	return nil
}

// removeStepCopy deletes a step copy and SQLite's side files of it. Remove
// deletes a symlink itself, never its target.
func removeStepCopy(cp string) {
	for _, s := range []string{cp, cp + "-journal", cp + "-wal", cp + "-shm"} {
		os.Remove(s)
	}
}

// liveWatch tells whether any other connection committed to the live DB
// since mark. In WAL mode it asks PRAGMA data_version on a dedicated
// connection (B), which works while the copy-back holds the WAL write lock
// (readers are not blocked). In rollback-journal mode the copy-back holds
// an EXCLUSIVE lock that no other connection can read through, so it
// compares bytes 24..39 of the DB header (the file change counter SQLite
// increments on every commit, page count and freelist: exactly what
// SQLite's pager compares to see another connection's change), read from
// the file while B holds a SHARED lock (mark) and while the copy-back holds
// the EXCLUSIVE lock (changed): both times no commit can be in flight.
type liveWatch struct {
	path string
	wal  bool
	db   *sql.DB
	conn *sql.Conn
	dv   int64
	hdr  [16]byte
}

func newLiveWatch(ctx context.Context, path string, live *sql.Conn, busy time.Duration) (*liveWatch, error) {
	var mode string
	if err := live.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, sqliteError(path, err)
	}
	db, err := openDB(path, busy, false)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	return &liveWatch{path: path, wal: mode == "wal", db: db, conn: conn}, nil
}

func (w *liveWatch) close() {
	w.conn.Close()
	w.db.Close()
}

// mark notes the live DB's state.
func (w *liveWatch) mark(ctx context.Context) (err error) {
	if w.wal {
		w.dv, err = pragmaInt(ctx, w.conn, "data_version")
		return err
	}
	if _, err := w.conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		return err
	}
	defer func() {
		if _, cerr := w.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if _, err := pragmaInt(ctx, w.conn, "data_version"); err != nil { // takes the SHARED lock
		return err
	}
	w.hdr, err = readChangeCounter(w.path)
	return err
}

// changed reports a commit by another connection since mark. The caller
// holds SQLite's write lock on the live DB (the copy-back's first step).
func (w *liveWatch) changed(ctx context.Context) (bool, error) {
	if w.wal {
		dv, err := pragmaInt(ctx, w.conn, "data_version")
		return dv != w.dv, err
	}
	h, err := readChangeCounter(w.path)
	return h != w.hdr, err
}

// readChangeCounter reads bytes 24..39 of a DB file's header.
func readChangeCounter(path string) ([16]byte, error) {
	var h [16]byte
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return h, err
	}
	// Closing it now would drop the locks SQLite holds for this process
	// (the copy-back's EXCLUSIVE lock): it is closed with the step.
	defer closeRaw(path, f)
	_, err = f.ReadAt(h[:], 24)
	return h, err
}

// copyBack brings the step's result (the copy cp) into the live DB behind
// conn in one write transaction through SQLite's backup API, only if the
// live DB did not change since w.mark: the first backup step, copying no
// page, takes SQLite's write lock on the live DB; with it held, w tells
// whether anyone committed meanwhile. If so, the backup is finished without
// copying anything (its transaction rolls back) and errLiveChanged is
// returned. A kill during the copy leaves a hot journal (or an uncommitted
// WAL tail) that SQLite rolls back: the live DB has all of the step with its
// history row, or none of it.
func copyBack(ctx context.Context, conn *sql.Conn, cp string, busy time.Duration, w *liveWatch) error {
	return conn.Raw(func(dc any) error {
		b, ok := dc.(onlineBackuper)
		if !ok {
			return fmt.Errorf("the SQLite driver does not offer the online backup API")
		}
		bk, err := b.NewRestore(dsn(cp, busy, true))
		if err != nil {
			return err
		}
		if _, err := bk.Step(0); err != nil {
			bk.Finish()
			return err
		}
		changed, err := w.changed(ctx)
		if err != nil {
			bk.Finish()
			return err
		}
		if changed {
			if err := bk.Finish(); err != nil {
				return err
			}
			return errLiveChanged
		}
		// In chunks, all in the one write transaction the first step began
		// (committed when the last page is copied); nobody writes the copy,
		// so the backup never restarts. Cancelling rolls it all back.
		for chunk, more := 1, true; more; chunk++ {
			if err := ctx.Err(); err != nil {
				bk.Finish()
				return err
			}
			if more, err = bk.Step(copyBackChunk); err != nil {
				bk.Finish()
				return err
			}
			if copyBackHook != nil && more {
				copyBackHook(chunk)
			}
		}
		return bk.Finish()
	})
}

// copyBackChunk is how many pages one copy-back step copies.
const copyBackChunk = 256

// copyBackHook, when set (tests only), runs after each copy-back chunk but
// the last, inside the copy-back's write transaction.
var copyBackHook func(chunk int)
