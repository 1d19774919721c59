package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// versionSchemas keeps the schema of each version (an Engine's migrations
// never change), so a worker verifying many tenants builds one scratch DB
// per version. Bounded: cleared when it grows past versionSchemasMax entries.
type versionSchemas struct {
	mu sync.Mutex
	m  map[int64][]SchemaObject
}

const versionSchemasMax = 256

// SchemaAt is the canonical schema (see [CanonicalSchema]) of a scratch DB
// migrated to version v; version 0 is the empty schema. Results are cached
// per Engine; callers must not modify the returned slice.
func (e *Engine) SchemaAt(ctx context.Context, v int64) ([]SchemaObject, error) {
	if v == 0 {
		return []SchemaObject{}, nil
	}
	e.schemas.mu.Lock()
	objs, ok := e.schemas.m[v]
	e.schemas.mu.Unlock()
	if ok {
		return objs, nil
	}
	scratchDir, err := os.MkdirTemp("", "shoal-drift-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratchDir)
	scratch := filepath.Join(scratchDir, "want.db")
	if _, err := e.Migrate(ctx, scratch, MigrateOptions{To: v, AllowOutOfOrder: true}); err != nil {
		return nil, fmt.Errorf("building the schema of version %d: %w", v, err)
	}
	e.forget(scratch)
	if objs, err = DBSchema(ctx, scratch); err != nil {
		return nil, err
	}
	e.schemas.mu.Lock()
	if e.schemas.m == nil || len(e.schemas.m) >= versionSchemasMax {
		e.schemas.m = map[int64][]SchemaObject{}
	}
	e.schemas.m[v] = objs
	e.schemas.mu.Unlock()
	return objs, nil
}
