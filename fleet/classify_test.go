package fleet

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/shoal-dev/shoal/engine"
)

func TestRetryable(t *testing.T) {
	mig := &engine.Error{Kind: engine.ErrMigration, Path: "a.db", File: "0007_x.sql", Statement: 2, Err: errors.New("no such column: y")}
	fk := &engine.Error{Kind: engine.ErrMigration, Path: "a.db", File: "0002_x.sql", Err: fmt.Errorf("%w introduced by this run", engine.ErrForeignKey)}
	script := &engine.Error{Kind: engine.ErrMigration, Path: "a.db", File: "0003_x.sh", Err: errors.New("exit status 3")}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"sql error", mig, false},
		{"foreign key", fk, false},
		{"script exit", script, false},
		{"target beyond head", &TargetError{Target: 9, Head: 3}, false},
		{"tenant moved", fmt.Errorf("%w: x", ErrTenantMoved), false},
		{"rejected", fmt.Errorf("%w: x", ErrRejected), false},
		{"unmanaged", &engine.Error{Path: "a.db", Kind: engine.ErrUnmanaged}, false},
		{"changed", &engine.Error{Path: "a.db", Kind: engine.ErrChanged}, false},
		{"corrupt", &engine.Error{Path: "a.db", Kind: engine.ErrCorrupt}, false},
		{"not found", &engine.Error{Path: "a.db", Kind: engine.ErrNotFound}, false},
		{"locked", &engine.Error{Path: "a.db", Kind: engine.ErrLocked}, true},
		{"disk full in a migration", &engine.Error{Kind: engine.ErrMigration, Path: "a.db", File: "x.sql", Err: syscall.ENOSPC}, true},
		{"io error", &engine.Error{Op: "backup", Path: "a.db", Kind: engine.ErrBackup, Err: syscall.EIO}, true},
		{"interrupted", context.DeadlineExceeded, true},
		{"unknown", errors.New("connection lost"), true},
		{"live changes", &engine.Error{Path: "a.db", Kind: engine.ErrLiveChanges}, true},
		{"interrupted step", &engine.Error{Path: "a.db", Kind: engine.ErrInterruptedStep}, false},
		{"side file", &engine.Error{Path: "a.db", Kind: engine.ErrSideFile}, false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("%s: Retryable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
