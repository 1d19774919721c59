package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// SQLite result codes shoal tells apart (sqlite3.h).
const (
	sqliteBusy             = 5
	sqliteFull             = 13
	sqliteReadOnlyRecovery = 8 | 1<<8 // SQLITE_READONLY_RECOVERY: a WAL needs recovery
	sqliteReadOnlyRollback = 8 | 3<<8 // SQLITE_READONLY_ROLLBACK: a hot journal needs rolling back
)

// sqliteCode is the extended result code of an error from SQLite, 0 when
// err is not one.
func sqliteCode(err error) int {
	var ce interface{ Code() int }
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

// sqliteBusyErr reports SQLITE_BUSY (the busy timeout ran out).
func sqliteBusyErr(err error) bool {
	return sqliteCode(err)&0xff == sqliteBusy || strings.Contains(err.Error(), "SQLITE_BUSY") ||
		strings.Contains(err.Error(), "database is locked")
}

// isDiskFull reports SQLITE_FULL or ENOSPC.
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	return sqliteCode(err)&0xff == sqliteFull || errors.Is(err, syscall.ENOSPC) ||
		strings.Contains(err.Error(), "database or disk is full") || strings.Contains(err.Error(), "no space left on device")
}

// classifySQLite turns the SQLite errors that need an operator's
// explanation into typed errors: a lock held past the busy timeout
// (ErrLocked), an interrupted transaction a read-only open cannot roll back
// (ErrHotJournal), a full disk (ErrDiskFull). Others: nil.
func classifySQLite(path string, err error) error {
	switch code := sqliteCode(err); {
	case code == sqliteReadOnlyRollback || code == sqliteReadOnlyRecovery ||
		strings.Contains(err.Error(), "(776)") || strings.Contains(err.Error(), "(1288)"):
		return hotJournalError(path, err)
	case isDiskFull(err):
		return diskFullError(path, err, "")
	case sqliteBusyErr(err):
		return &Error{Path: path, Kind: ErrLocked, Detail: "another connection held a lock on the database past the busy timeout", Err: err,
			Hint: "retry later or raise Options.BusyTimeout"}
	}
	return nil
}

// hotJournalError explains a DB that a read-only look cannot read: a writer
// was killed in the middle of a transaction.
func hotJournalError(path string, err error) error {
	side := path + "-journal"
	if _, serr := os.Lstat(side); serr != nil {
		side = path + "-wal"
	}
	return &Error{Path: path, Kind: ErrHotJournal,
		Detail: "a writer (an application or a migrator) was killed in the middle of a transaction and left " + side +
			"; SQLite rolls it back the next time the database is opened read-write, and until then a read-only look cannot read it", Err: err,
		Hint: "migrate it with Engine.Migrate (it rolls the transaction back first, then migrates), or open the database once with any SQLite client; do not delete " + side}
}

// diskFullError says that the disk (or SQLite's max_page_count) is full,
// where, how much is free and about how much the run needs.
func diskFullError(path string, err error, what string) error {
	return &Error{Path: path, Kind: ErrDiskFull, Detail: diskFullDetail(path, what), Err: err,
		Hint: "free space on that file system (or raise PRAGMA max_page_count if a migration set one) and run again; nothing of the failed step was kept"}
}

// diskFullDetail measures the free space beside path and the DB's size.
func diskFullDetail(path, what string) string {
	dir := filepath.Dir(path)
	var b strings.Builder
	if what != "" {
		b.WriteString(what + ": ")
	}
	b.WriteString("no space left for " + path)
	var need int64
	if fi, err := os.Stat(path); err == nil {
		need = fi.Size()
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err == nil {
		free := int64(sfs.Bavail) * int64(sfs.Bsize)
		fmt.Fprintf(&b, "; %s has %s free", dir, humanBytes(free))
	}
	// A rollback journal, a snapshot or a backup holds up to a copy of the
	// DB, and the migration's new pages come on top.
	fmt.Fprintf(&b, "; a run needs at least about %s free (the size of the database, for its journal, snapshot or backup) plus what the migration adds", humanBytes(max(need, 1<<20)))
	return b.String()
}

// humanBytes formats a byte count for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
