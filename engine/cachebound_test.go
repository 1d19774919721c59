package engine

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestAtHeadCacheIsBounded: the at-head cache never holds more DBs than its
// bound, holds none when turned off, and a DB evicted is still read right.
func TestAtHeadCacheIsBounded(t *testing.T) {
	e := newEngine(t, basic)
	dir := t.TempDir()
	var paths []string
	for i := range 12 {
		p := filepath.Join(dir, fmt.Sprintf("t%02d.db", i))
		if _, err := e.Migrate(ctx(t), p, MigrateOptions{}); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, tc := range []struct{ limit, want int }{{5, 5}, {-1, 0}, {0, 12}} {
		e.SetAtHeadCache(tc.limit)
		for _, p := range paths {
			if v, err := e.Version(ctx(t), p); err != nil || v != e.Head() {
				t.Fatalf("limit %d: %s: version %d, %v", tc.limit, p, v, err)
			}
		}
		if n := e.atHeadCached(); n != tc.want {
			t.Fatalf("limit %d: cache holds %d DBs, want %d", tc.limit, n, tc.want)
		}
	}
	e.SetAtHeadCache(3)
	if n := e.atHeadCached(); n != 3 {
		t.Fatalf("lowering the bound left %d DBs cached", n)
	}
}
