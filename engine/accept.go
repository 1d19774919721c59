package engine

import (
	"context"
	"fmt"
)

// Accepted is one history row whose checksum was replaced.
type Accepted struct {
	Version     int64  `json:"version"`
	File        string `json:"file"`
	OldChecksum string `json:"old_checksum"`
	NewChecksum string `json:"new_checksum"`
}

// Accept records the current checksum of applied migrations whose file was
// edited, after an operator has reviewed the edit. Versions not applied or
// unchanged are reported as errors / skipped.
func (e *Engine) Accept(ctx context.Context, path string, versions []int64) ([]Accepted, error) {
	exists, err := checkFile(path)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, &Error{Path: path, Kind: ErrNotFound}
	}
	s, err := e.lockSession(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	st, conn := s.st, s.conn
	var out []Accepted
	for _, v := range versions {
		h, ok := st.applied[v]
		if !ok {
			return nil, fmt.Errorf("%s: version %d is not applied, nothing to accept", path, v)
		}
		m, ok := e.byVersion[v]
		if !ok {
			return nil, &Error{Path: path, Kind: ErrAhead, Detail: fmt.Sprintf("version %d has no migration file", v)}
		}
		if m.Checksum != h.Checksum {
			out = append(out, Accepted{Version: v, File: m.File, OldChecksum: h.Checksum, NewChecksum: m.Checksum})
		}
	}
	if len(out) == 0 {
		return []Accepted{}, nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, lockOrSQLite(path, err)
	}
	defer tx.Rollback()
	for _, a := range out {
		if _, err := tx.ExecContext(ctx, `UPDATE `+historyTable+` SET checksum = ? WHERE version = ?`, a.NewChecksum, a.Version); err != nil {
			return nil, sqliteError(path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, lockOrSQLite(path, err)
	}
	e.forget(path)
	return out, nil
}
