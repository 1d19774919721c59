package engine

import (
	"context"
)

// Status is a DB's position against the migrations.
type Status struct {
	Path    string `json:"path"`
	Exists  bool   `json:"exists"`
	Version int64  `json:"version"`
	Head    int64  `json:"head"`
	// Pending lists migrations not applied yet, in order.
	Pending []Applied `json:"pending"`
	// Applied lists the history rows; Changed marks those whose file changed.
	Applied []AppliedStatus `json:"applied"`
	// Layout names the layout the migrations directory was read in.
	Layout string `json:"layout"`
	// Changed lists the files of applied migrations edited since they were
	// applied (migrate refuses the DB until they are restored or accepted).
	Changed []string `json:"changed"`
	// Ahead lists applied versions that have no migration file.
	Ahead []int64 `json:"ahead"`
}

// AppliedStatus is one history row and whether its file still matches.
type AppliedStatus struct {
	HistoryRow
	File    string `json:"file"`
	Missing bool   `json:"missing"` // no migration file has this version (ahead)
	Changed bool   `json:"changed"` // the file's checksum differs from the recorded one
}

// Status reads a DB's history without the write lock and without creating
// or changing the file (a missing file: Exists false, version 0, everything
// pending). Applied migrations whose file changed are marked, not refused.
// A file with an interrupted transaction to roll back is ErrHotJournal.
func (e *Engine) Status(ctx context.Context, path string) (*Status, error) {
	s := &Status{Path: path, Head: e.head, Pending: []Applied{}, Applied: []AppliedStatus{}, Changed: []string{}, Ahead: []int64{}, Layout: e.layout}
	info, err := inspectFile(path)
	if err != nil {
		return nil, err
	}
	s.Exists = !info.missing
	st := &dbState{applied: map[int64]HistoryRow{}}
	if info.exists {
		db, err := openDB(path, e.opts.BusyTimeout, true)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, sqliteError(path, err)
		}
		defer conn.Close()
		budget := newWaitBudget(e.opts.BusyTimeout)
		budget.opened(conn, e.opts.BusyTimeout)
		if st, err = readState(ctx, path, budgeted(conn, budget)); err != nil {
			return nil, err
		}
		if !st.managed && st.userObjects > 0 {
			return nil, &Error{Path: path, Kind: ErrUnmanaged, Hint: "adopt it with Engine.Enroll"}
		}
	}
	s.Version = st.version
	for _, h := range st.history {
		a := AppliedStatus{HistoryRow: h}
		if m, ok := e.byVersion[h.Version]; ok {
			a.File = m.File
			a.Changed = m.Checksum != h.Checksum
			if a.Changed {
				s.Changed = append(s.Changed, m.File)
			}
		} else {
			a.Missing = true
			s.Ahead = append(s.Ahead, h.Version)
		}
		s.Applied = append(s.Applied, a)
	}
	for i := range e.migrations {
		m := &e.migrations[i]
		if _, ok := st.applied[m.Version]; !ok {
			s.Pending = append(s.Pending, Applied{Version: m.Version, Name: m.Name, File: m.File})
		}
	}
	return s, nil
}
