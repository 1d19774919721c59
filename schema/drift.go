package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/shoal-dev/shoal/engine"
)

// Drift compares the live DB at path with the schema its recorded version
// should have: a scratch DB migrated to that version by e, object by object
// (canonical form; see [engine.DiffSchemas]). No differences is an empty
// slice. The DB is only read (never created or locked for writing). Errors
// are the engine's: [engine.ErrNotFound] for a missing file,
// [engine.ErrUnmanaged], [engine.ErrCorrupt], or [engine.ErrAhead] when the
// recorded version has no migration.
func Drift(ctx context.Context, e *engine.Engine, path string) ([]engine.SchemaDiff, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &engine.Error{Path: path, Kind: engine.ErrNotFound, Hint: "check --db"}
		}
	}
	s, err := e.Status(ctx, path)
	if err != nil {
		return nil, err
	}
	for _, a := range s.Applied {
		if a.Missing {
			return nil, &engine.Error{Path: path, Kind: engine.ErrAhead, Detail: fmt.Sprintf("history records version %d, which has no migration file", a.Version),
				Hint: "compare with the migrations directory that migrated it"}
		}
	}
	got, err := engine.DBSchema(ctx, path)
	if err != nil {
		return nil, err
	}
	want, err := e.SchemaAt(ctx, s.Version)
	if err != nil {
		return nil, err
	}
	return diffCanonical(want, engine.WithoutForeign(got, want)), nil
}

// Verifier is an engine that also checks drift: pass it, instead of the
// bare *engine.Engine, where DBs are verified after migrating (a worker's or
// a local run's Verify, fleet status --verify). Every engine method is
// promoted.
type Verifier struct{ *engine.Engine }

// Drift is [Drift] with the verifier's engine.
func (v Verifier) Drift(ctx context.Context, path string) ([]engine.SchemaDiff, error) {
	return Drift(ctx, v.Engine, path)
}
