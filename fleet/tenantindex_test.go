package fleet

import (
	"fmt"
	"strings"
	"testing"
)

// TestTenantIndex: every tenant added is found under its name and no other,
// through the table's growth, for empty, long (a chunk of their own) and
// ordinary names, and past a full name arena (names kept aside).
func TestTenantIndex(t *testing.T) {
	x := newTenantIndex()
	var names []string
	add := func(name string) {
		if _, ok := x.find(name); ok {
			t.Fatalf("%.40q found before it was added", name)
		}
		i := x.add(name, entry{latestAt: int64(len(names))})
		if int(i) != len(names) {
			t.Fatalf("%.40q: number %d, want %d", name, i, len(names))
		}
		names = append(names, name)
	}
	add("")
	add(strings.Repeat("L", nameChunk)) // longer than a chunk
	for i := range 3 * entryPage {
		add(fmt.Sprintf("tenant-%06d/app.db", i))
		if i == entryPage {
			add(strings.Repeat("m", nameChunk/4+1)) // a chunk of its own, between ordinary names
		}
	}
	// A full arena: the next names are kept aside.
	chunks := x.names.chunks
	x.names.chunks = append(chunks, make([][]byte, 1<<16-1-len(chunks))...)
	for i := range 5 {
		add(fmt.Sprintf("overflow-%d", i))
	}
	if len(x.overflow) != 5 {
		t.Fatalf("%d names kept aside, want 5", len(x.overflow))
	}
	for i, name := range names {
		j, ok := x.find(name)
		if !ok || int(j) != i || x.name(j) != name || x.entry(j).latestAt != int64(i) {
			t.Fatalf("%.40q: found %v as %d (%.40q), want %d", name, ok, j, x.name(j), i)
		}
	}
	for _, name := range []string{"tenant-999999/app.db", "L", "overflow-9", "tenant-000001/app.d"} {
		if _, ok := x.find(name); ok {
			t.Fatalf("%q found, never added", name)
		}
	}
	if x.n != len(names) || len(x.slots) < 2*x.n {
		t.Fatalf("%d entries in %d slots", x.n, len(x.slots))
	}
}
