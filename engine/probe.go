package engine

import (
	"context"
)

// Version reads the DB's shoal version cheaply, without the write lock and
// without creating the file: 0 for a missing or empty file. Through this
// handle a DB verified at head costs about one stat(); a DB at head in
// rollback-journal mode, a read of its header; in WAL mode, an open and two
// header pragmas; others have their history read. It returns ErrUnmanaged
// and ErrCorrupt like Migrate, but does not run quick_check or compare
// checksums (Status does).
func (e *Engine) Version(ctx context.Context, path string) (int64, error) {
	v, _, _, err := e.probe(ctx, path)
	return v, err
}

// Probe is what Engine.Probe found of one DB file.
type Probe struct {
	// Version is what Version returns.
	Version int64
	// AtHead: the DB is at head, verified through the migration-set
	// fingerprint in its header, and unchanged since: exactly the case in
	// which Migrate returns `current` without a transaction.
	AtHead bool
	// State identifies the file's state when AtHead (device, inode, size,
	// modification and change times of the file and, in WAL mode, of its
	// -wal): any commit, rewrite or replacement changes it. Empty otherwise.
	State string
}

// Probe is Version, and also says whether the DB was verified at head and
// in which state of the file, from the system calls Version makes anyway:
// a caller that needs both (the producer: the version, then an id for the
// file's state) does not stat the file again.
func (e *Engine) Probe(ctx context.Context, path string) (Probe, error) {
	v, fp, atHead, err := e.probe(ctx, path)
	if err != nil || !atHead {
		return Probe{Version: v}, err
	}
	return Probe{Version: v, AtHead: true, State: fp.String()}, nil
}

// probe is Version, with the fingerprint when the DB was verified at head
// (atHead): Version, on every DB of fleet status, never formats it.
func (e *Engine) probe(ctx context.Context, path string) (v int64, fp fingerprint, atHead bool, err error) {
	if fp, ok := e.cachedFingerprint(path); ok {
		return e.head, fp, true, nil
	}
	info, err := inspectFile(path)
	if err != nil || !info.exists {
		return 0, fp, false, err
	}
	if !info.pending && e.headerAtHead(path, info.fp, info.hdr) {
		e.rememberAtHead(path, info.fp)
		return e.head, info.fp, true, nil
	}
	opened, err := e.versionOpen(ctx, path, info)
	if err != nil {
		return 0, fp, false, err
	}
	if opened.atHead {
		return e.head, info.fp, true, nil
	}
	return opened.version, fp, false, nil
}

type openedVersion struct {
	version int64
	atHead  bool // verified through the header's migration-set fingerprint
}

// versionOpen is Version through SQLite, for a file the header alone
// cannot judge (WAL mode, a journal beside it, another migration set).
func (e *Engine) versionOpen(ctx context.Context, path string, info fileInfo) (openedVersion, error) {
	db, err := openDB(path, e.opts.BusyTimeout, true)
	if err != nil {
		return openedVersion{}, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return openedVersion{}, sqliteError(path, err)
	}
	defer conn.Close()
	// Every wait of this look shares one busy timeout.
	budget := newWaitBudget(e.opts.BusyTimeout)
	budget.opened(conn, e.opts.BusyTimeout)
	q := budgeted(conn, budget)
	appID, err := pragmaInt(ctx, q, "application_id")
	if err != nil {
		return openedVersion{}, sqliteError(path, err)
	}
	if appID == shoalAppID {
		uv, err := pragmaInt(ctx, q, "user_version")
		if err != nil {
			return openedVersion{}, sqliteError(path, err)
		}
		if uv == e.headHash {
			e.rememberAtHead(path, info.fp)
			return openedVersion{version: e.head, atHead: true}, nil
		}
	}
	st, err := readState(ctx, path, q)
	if err != nil {
		return openedVersion{}, err
	}
	if !st.managed && st.userObjects > 0 {
		return openedVersion{}, &Error{Path: path, Kind: ErrUnmanaged, Hint: "adopt it with Engine.Enroll"}
	}
	return openedVersion{version: st.version}, nil
}
