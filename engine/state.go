package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// dbState is what a run knows of one DB.
type dbState struct {
	exists      bool // the file exists with content
	managed     bool // shoal's history table exists
	userObjects int  // user tables, indexes, views, triggers
	appID       int64
	userVersion int64
	history     []HistoryRow
	applied     map[int64]HistoryRow
	version     int64 // newest applied version
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

const sqliteMagic = "SQLite format 3\x00"

// fileInfo is what one look at a DB file on disk tells, before SQLite opens it.
type fileInfo struct {
	missing bool        // no file at all
	exists  bool        // a SQLite database with content (not missing, not empty)
	fp      fingerprint // valid when exists
	hdr     [100]byte   // the header, when exists
	// pending: the header is not a SQLite header (a first page zeroed or
	// half-written by a writer that was killed) but a -journal or -wal
	// lies beside the file: only SQLite may judge it, rolling the journal
	// back (or recovering the WAL) when it opens the file read-write.
	pending bool
}

// inspectFile stats a DB file and reads its 100-byte header once: what the
// no-op check, the refusal of non-databases and the cache all need. It
// returns ErrCorrupt for a directory, a truncated file or a file that is not
// a SQLite database, so that such files are refused without SQLite ever
// writing to them. A missing or empty file is a fresh DB (exists=false).
func inspectFile(path string) (fileInfo, error) {
	var info fileInfo
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			info.missing = true
			return info, nil
		}
		return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "cannot stat the file", Err: err}
	}
	if fi.IsDir() {
		return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "is a directory, not a database file",
			Hint: "give the path of a SQLite database file"}
	}
	if !fi.Mode().IsRegular() {
		return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "is not a regular file"}
	}
	if fi.Size() == 0 {
		return info, nil
	}
	// A plain open/pread/close, closed so as never to drop the POSIX locks
	// of this process's SQLite connections.
	n, err := readHead(path, info.hdr[:])
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Op == "open" {
			return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "cannot read the file", Err: err}
		}
		return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "cannot read the header", Err: err}
	}
	if (n < len(sqliteMagic) || !bytes.Equal(info.hdr[:len(sqliteMagic)], []byte(sqliteMagic)) || n < 100) && hasSideJournal(path) {
		// A fresh DB killed during its first run has a zeroed first
		// page and a hot journal: SQLite rolls it back to an empty DB.
		info.exists, info.pending = true, true
		info.fp = fingerprint{db: fileIDOf(fi), walMode: true}
		if info.fp.wal, err = statID(path + "-wal"); err != nil {
			return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "cannot stat the -wal file", Err: err}
		}
		return info, nil
	}
	if n < len(sqliteMagic) || !bytes.Equal(info.hdr[:len(sqliteMagic)], []byte(sqliteMagic)) {
		return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "not a SQLite database (no SQLite header)",
			Hint: "check the path; restore the tenant from a backup if this file should be a database"}
	}
	if n < 100 {
		return info, &Error{Path: path, Kind: ErrCorrupt, Detail: fmt.Sprintf("truncated: %d bytes, shorter than a SQLite header", fi.Size()),
			Hint: "restore the tenant from a backup"}
	}
	info.exists = true
	info.fp = fingerprint{db: fileIDOf(fi), walMode: info.hdr[18] == 2}
	if info.fp.walMode {
		if info.fp.wal, err = statID(path + "-wal"); err != nil {
			return info, &Error{Path: path, Kind: ErrCorrupt, Detail: "cannot stat the -wal file", Err: err}
		}
	}
	return info, nil
}

// hasSideJournal reports a non-empty -journal or -wal beside path: a
// transaction SQLite may have to roll back or recover before the file's own
// bytes mean anything. An empty -journal (journal_mode=TRUNCATE) is not hot.
func hasSideJournal(path string) bool {
	for _, side := range []string{"-journal", "-wal"} {
		if fi, err := os.Lstat(path + side); err == nil && fi.Size() > 0 {
			return true
		}
	}
	return false
}

// checkFile is inspectFile for callers that only need to know whether the
// DB has content.
func checkFile(path string) (exists bool, err error) {
	info, err := inspectFile(path)
	return info.exists, err
}

// readState reads the header pragmas, whether shoal manages the DB, and its
// history.
func readState(ctx context.Context, path string, q querier) (*dbState, error) {
	st := &dbState{exists: true, applied: map[int64]HistoryRow{}}
	var err error
	if st.appID, err = pragmaInt(ctx, q, "application_id"); err != nil {
		return nil, sqliteError(path, err)
	}
	if st.userVersion, err = pragmaInt(ctx, q, "user_version"); err != nil {
		return nil, sqliteError(path, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return nil, sqliteError(path, err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, sqliteError(path, err)
		}
		switch name {
		case historyTable:
			st.managed = true
		case metaTable, "sqlite_autoindex_" + historyTable + "_1", "sqlite_autoindex_" + metaTable + "_1":
		default:
			st.userObjects++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, sqliteError(path, err)
	}
	if !st.managed {
		return st, nil
	}
	if st.history, err = readHistory(ctx, q); err != nil {
		return nil, sqliteError(path, err)
	}
	for _, h := range st.history {
		st.applied[h.Version] = h
		if h.Version > st.version {
			st.version = h.Version
		}
	}
	return st, nil
}

// sqliteError classifies an error SQLite returned while reading a DB:
// "not a database" and corruption are ErrCorrupt, the rest are wrapped with
// the path.
func sqliteError(path string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := dbError(err); ok {
		return err
	}
	if cerr := classifySQLite(path, err); cerr != nil {
		return cerr
	}
	msg := err.Error()
	if strings.Contains(msg, "not a database") || strings.Contains(msg, "malformed") ||
		strings.Contains(msg, "SQLITE_CORRUPT") || strings.Contains(msg, "SQLITE_NOTADB") || strings.Contains(msg, "disk image") {
		return &Error{Path: path, Kind: ErrCorrupt, Err: err, Hint: "restore the tenant from a backup"}
	}
	return fmt.Errorf("%s: %w", path, err)
}
