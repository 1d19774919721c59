package engine

import (
	"fmt"
	"strings"
)

// plan checks a DB's state against the migrations and returns the pending
// migrations up to target, in version order. Refusals (unmanaged, ahead,
// changed, out_of_order) are returned as typed errors.
func (e *Engine) plan(path string, st *dbState, target int64, o MigrateOptions) ([]*Migration, error) {
	if !st.managed && st.userObjects > 0 {
		return nil, &Error{Path: path, Kind: ErrUnmanaged,
			Detail: fmt.Sprintf("it has %d tables, indexes, views or triggers and no %s table", st.userObjects, historyTable),
			Hint:   "adopt it with Engine.Enroll once its schema matches your migrations"}
	}
	if err := e.checkApplied(path, st, o.AllowChanged); err != nil {
		return nil, err
	}
	var pending []*Migration
	for i := range e.migrations {
		m := &e.migrations[i]
		if _, done := st.applied[m.Version]; done || m.Version > target {
			continue
		}
		if m.Version < st.version && !o.AllowOutOfOrder {
			return nil, &Error{Path: path, Kind: ErrOutOfOrder,
				Detail: fmt.Sprintf("%s is pending but version %d is already applied", m.File, st.version),
				Hint:   "renumber the migration above the newest applied one, or set MigrateOptions.AllowOutOfOrder"}
		}
		// Other layouts refuse empty files when loading (diesel's initial
		// setup migration excepted); shoal's own loads them so that
		// `shoal new` can run again, and holds them back here.
		if e.layout == LayoutShoal && (m.Kind == KindSQL || m.Kind == KindSQLNoTx) && len(m.Up) == 0 {
			return nil, &Error{Path: path, Kind: ErrEmptyMigration,
				Detail: fmt.Sprintf("%s is pending and its up section has no statement (the empty template `shoal new` writes?)", m.File),
				Hint:   "write the migration's SQL, or delete the file (a deliberately empty step needs one statement, e.g. SELECT 1;); nothing was applied"}
		}
		pending = append(pending, m)
	}
	return pending, nil
}

// checkApplied refuses a DB whose history names a version with no migration
// (ahead) or whose applied migrations changed since.
func (e *Engine) checkApplied(path string, st *dbState, allowChanged bool) error {
	var ahead, changed []string
	for _, h := range st.history {
		m, ok := e.byVersion[h.Version]
		if !ok {
			ahead = append(ahead, fmt.Sprintf("%d (%s)", h.Version, h.Name))
			continue
		}
		if m.Checksum != h.Checksum && !allowChanged {
			changed = append(changed, m.File)
		}
	}
	if len(ahead) > 0 {
		return &Error{Path: path, Kind: ErrAhead,
			Detail: "applied versions with no migration file: " + strings.Join(ahead, ", "),
			Hint:   "deploy the migrations this DB was migrated with, or roll it back with Engine.Down from a build that has them"}
	}
	if len(changed) > 0 {
		return &Error{Path: path, Kind: ErrChanged,
			Detail: "edited after they were applied: " + strings.Join(changed, ", "),
			Hint:   "restore the applied text, add a new migration instead, or accept the edit with Engine.Accept / MigrateOptions.AllowChanged"}
	}
	return nil
}
