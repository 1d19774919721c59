package tenants

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/shoal-dev/shoal/engine"
)

// Versioner is the part of the engine the fleet status and the producer's
// --only-behind use: a read of a DB's version without the write lock.
type Versioner interface {
	Head() int64
	Version(ctx context.Context, path string) (int64, error)
}

// FleetStatus is `shoal fleet status --json`. Lists hold tenant ids, sorted,
// never null. Errors lists DBs whose version could not be read for another
// reason (permissions, I/O), as "tenant: error".
type FleetStatus struct {
	Head      int64          `json:"head"`
	Versions  map[string]int `json:"versions"`
	Behind    []string       `json:"behind"`
	Ahead     []string       `json:"ahead"`
	Unmanaged []string       `json:"unmanaged"`
	Corrupt   []string       `json:"corrupt"`
	Errors    []string       `json:"errors"`
	// Drifted lists DBs at head whose schema differs from what head should
	// have; filled only with --verify (VerifyDrift), else empty.
	Drifted []string `json:"drifted"`
	Total   int      `json:"total"`
	// Backups is the disk taken by shoal's backups under the backup
	// directory (fleet status --backup-dir); absent without one.
	Backups *BackupUsage `json:"backups,omitempty"`
}

// DriftChecker compares a DB's schema with its version's (schema.Verifier wraps an engine with it).
type DriftChecker interface {
	Drift(ctx context.Context, path string) ([]engine.SchemaDiff, error)
}

// AtHead reports whether every DB is at head.
func (s *FleetStatus) AtHead() bool {
	return len(s.Behind)+len(s.Ahead)+len(s.Unmanaged)+len(s.Corrupt)+len(s.Errors)+len(s.Drifted) == 0
}

// statusBatch is how many DBs a status worker takes at a time.
const statusBatch = 64

// Status walks root and reads every DB's version with `workers` goroutines.
// With verify (and an engine that is a DriftChecker), DBs at head also have
// their schema compared with head's.
func Status(ctx context.Context, e Versioner, root, pattern string, workers int, verify bool) (*FleetStatus, error) {
	dc, _ := e.(DriftChecker)
	if verify && dc == nil {
		return nil, errors.New("fleet status: --verify needs an engine that can check drift")
	}
	if workers <= 0 {
		workers = 4
	}
	st := &FleetStatus{Head: e.Head(), Versions: map[string]int{}, Behind: []string{}, Ahead: []string{},
		Unmanaged: []string{}, Corrupt: []string{}, Errors: []string{}, Drifted: []string{}}
	type item struct{ tenant, path string }
	// Batches: one channel hand-off per statusBatch DBs, not per DB (the
	// hand-offs, not the reads, dominated a status of 100,000 DBs).
	ch := make(chan []item, workers*2)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range ch {
				for _, it := range batch {
					v, err := e.Version(ctx, it.path)
					var drifted bool
					if err == nil && v == st.Head && verify {
						var diffs []engine.SchemaDiff
						diffs, err = dc.Drift(ctx, it.path)
						drifted = len(diffs) > 0
					}
					mu.Lock()
					if drifted {
						st.Drifted = append(st.Drifted, it.tenant)
					}
					st.Total++
					switch {
					case err == nil && v == st.Head:
						st.Versions[strconv.FormatInt(v, 10)]++
					case err == nil && v < st.Head:
						st.Versions[strconv.FormatInt(v, 10)]++
						st.Behind = append(st.Behind, it.tenant)
					case err == nil:
						st.Versions[strconv.FormatInt(v, 10)]++
						st.Ahead = append(st.Ahead, it.tenant)
					case errors.Is(err, engine.ErrAhead):
						st.Ahead = append(st.Ahead, it.tenant)
					case errors.Is(err, engine.ErrUnmanaged):
						st.Unmanaged = append(st.Unmanaged, it.tenant)
					case errors.Is(err, engine.ErrCorrupt):
						st.Corrupt = append(st.Corrupt, it.tenant)
					case ctx.Err() != nil:
					default:
						st.Errors = append(st.Errors, fmt.Sprintf("%s: %v", it.tenant, err))
					}
					mu.Unlock()
				}
			}
		}()
	}
	batch := make([]item, 0, statusBatch)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case ch <- batch:
			batch = make([]item, 0, statusBatch)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	werr := Walk(ctx, root, pattern, func(tenant, path string) error {
		batch = append(batch, item{tenant, path})
		if len(batch) < statusBatch {
			return nil
		}
		return send()
	})
	if werr == nil {
		werr = send()
	}
	close(ch)
	wg.Wait()
	if werr != nil {
		return nil, werr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, l := range [][]string{st.Behind, st.Ahead, st.Unmanaged, st.Corrupt, st.Errors, st.Drifted} {
		sort.Strings(l)
	}
	return st, nil
}

// BackupUsage is the disk taken by shoal's backups in a backup directory.
type BackupUsage struct {
	Dir   string `json:"dir"`
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}
