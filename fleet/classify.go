package fleet

import (
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/engine"
)

// ErrTargetBeyondHead: a job targets a version beyond the worker's
// migrations. Retrying cannot help (the job fails at attempt 1).
var ErrTargetBeyondHead = errors.New("job targets a version beyond this worker's migrations")

// TargetError is ErrTargetBeyondHead with the versions.
type TargetError struct{ Target, Head int64 }

func (e *TargetError) Error() string {
	return fmt.Sprintf("%v: the job targets version %d but this worker's migrations end at %d (deploy the new migrations to the workers, then run again)",
		ErrTargetBeyondHead, e.Target, e.Head)
}

func (e *TargetError) Unwrap() error { return ErrTargetBeyondHead }

// ErrTenantMoved: after the run, the tenant's path no longer resolves to
// the file it resolved to before (a symlink or another file was swapped in
// during the run). Not retried.
var ErrTenantMoved = errors.New("the tenant's path changed during the run")

// Retryable is the one place that decides whether a failed job is tried
// again: true only for failures that may heal by themselves (engine.Transient:
// the DB locked past the busy timeout, SQLite's busy/I/O/full codes, a full
// disk, an interrupted run, a lost connection). A migration's SQL error, a
// constraint or foreign-key violation introduced by the run, a script's
// non-zero exit, a target beyond the worker's migrations, a refusal, a
// rejected job and a tenant moved during the run fail the same way every
// time: the job ends at the attempt that saw them. nil is not retryable.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrTargetBeyondHead) || errors.Is(err, ErrTenantMoved) {
		return false
	}
	return engine.Transient(err)
}
