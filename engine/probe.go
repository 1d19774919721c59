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
	if e.cachedAtHead(path) {
		return e.head, nil
	}
	info, err := inspectFile(path)
	if err != nil || !info.exists {
		return 0, err
	}
	if !info.pending && e.headerAtHead(path, info.fp, info.hdr) {
		e.rememberAtHead(path, info.fp)
		return e.head, nil
	}
	db, err := openDB(path, e.opts.BusyTimeout, true)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, sqliteError(path, err)
	}
	defer conn.Close()
	// Every wait of this look shares one busy timeout.
	budget := newWaitBudget(e.opts.BusyTimeout)
	budget.opened(conn, e.opts.BusyTimeout)
	q := budgeted(conn, budget)
	appID, err := pragmaInt(ctx, q, "application_id")
	if err != nil {
		return 0, sqliteError(path, err)
	}
	if appID == shoalAppID {
		uv, err := pragmaInt(ctx, q, "user_version")
		if err != nil {
			return 0, sqliteError(path, err)
		}
		if uv == e.headHash {
			e.rememberAtHead(path, info.fp)
			return e.head, nil
		}
	}
	st, err := readState(ctx, path, q)
	if err != nil {
		return 0, err
	}
	if !st.managed && st.userObjects > 0 {
		return 0, &Error{Path: path, Kind: ErrUnmanaged, Hint: "adopt it with Engine.Enroll"}
	}
	return st.version, nil
}
