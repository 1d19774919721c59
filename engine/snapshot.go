package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
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
