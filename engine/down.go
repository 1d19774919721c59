package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Down undoes applied migrations newest first until the DB is at version to,
// with the same lock, transaction and foreign-key handling as going up. It
// refuses before touching anything when a step on the way has no down part
// (ErrNoDown, naming every such file) or no longer has a file (ErrAhead).
func (e *Engine) Down(ctx context.Context, path string, to int64) (*Result, error) {
	if to < 0 {
		return nil, fmt.Errorf("--to must be 0 or more, got %d", to)
	}
	res := &Result{Path: path, Applied: []Applied{}, Pending: []Applied{}}
	exists, err := checkFile(path)
	if err != nil {
		return nil, err
	}
	if !exists {
		return res, nil // nothing applied, nothing to undo; never create the file
	}
	s, err := e.lockSession(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	st := s.st
	if !st.managed && st.userObjects > 0 {
		return nil, &Error{Path: path, Kind: ErrUnmanaged, Hint: "adopt it with Engine.Enroll first"}
	}
	res.From, res.To = st.version, st.version
	steps, err := e.downPlan(path, st, to)
	if err != nil || len(steps) == 0 {
		return res, err
	}
	if err := quickCheck(ctx, path, s.conn); err != nil {
		return nil, err
	}
	e.forget(path)
	err = s.apply(ctx, steps, applyOptions{down: true}, res)
	return res, err
}

// downPlan lists the applied migrations above to, newest first, refusing if
// any cannot be undone.
func (e *Engine) downPlan(path string, st *dbState, to int64) ([]*Migration, error) {
	if err := e.checkApplied(path, st, false); err != nil {
		return nil, err
	}
	var steps []*Migration
	var missing []string
	for _, h := range st.history {
		if h.Version <= to {
			continue
		}
		m := e.byVersion[h.Version]
		if !m.HasDown {
			missing = append(missing, m.File)
		}
		steps = append(steps, m)
	}
	if len(missing) > 0 {
		return nil, &Error{Path: path, Kind: ErrNoDown, Detail: "no down part in " + strings.Join(missing, ", "),
			Hint: "add a -- migrate:down section, or restore a backup instead; nothing was changed"}
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].Version > steps[j].Version })
	return steps, nil
}

// Redo undoes the newest applied migration and applies it again: for working
// on a migration. The two halves are separate runs, each all-or-nothing.
func (e *Engine) Redo(ctx context.Context, path string) (*Result, error) {
	s, err := e.Status(ctx, path)
	if err != nil {
		return nil, err
	}
	if s.Version == 0 {
		return nil, fmt.Errorf("%s: nothing applied, nothing to redo", path)
	}
	prev := int64(0)
	for _, a := range s.Applied {
		if a.Version < s.Version {
			prev = a.Version
		}
	}
	if _, err := e.Down(ctx, path, prev); err != nil {
		return nil, err
	}
	return e.Migrate(ctx, path, MigrateOptions{To: s.Version})
}
