package tenants

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func touch(t *testing.T, root string, rels ...string) {
	t.Helper()
	for _, r := range rels {
		p := filepath.Join(root, filepath.FromSlash(r))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func walkAll(t *testing.T, root, pattern string) []string {
	t.Helper()
	var got []string
	err := Walk(context.Background(), root, pattern, func(tenant, path string) error {
		if path != filepath.Join(root, filepath.FromSlash(tenant)) {
			t.Fatalf("path %s for tenant %s", path, tenant)
		}
		got = append(got, tenant)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

func TestWalkPatternSemantics(t *testing.T) {
	root := t.TempDir()
	touch(t, root,
		"a/app.db", "b/app.db", "b/other.db", "b/app.db-wal", "c/deep/app.db", "top.db",
		"d/app.db.20260101T000000.000000000.bak", "e/x.sqlite", ".hidden/app.db")
	os.MkdirAll(filepath.Join(root, "dir.db"), 0o755) // a directory named like a DB is not a DB
	os.MkdirAll(filepath.Join(root, "f", "sub.db"), 0o755)
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"*/*.db", []string{".hidden/app.db", "a/app.db", "b/app.db", "b/other.db"}},
		{"*.db", []string{"top.db"}},
		{"*/app.db", []string{".hidden/app.db", "a/app.db", "b/app.db"}},
		{"*/*/*.db", []string{"c/deep/app.db"}},
		{"b/*.db", []string{"b/app.db", "b/other.db"}},
		{"[ab]/app.db", []string{"a/app.db", "b/app.db"}},
		{"?/app.db", []string{"a/app.db", "b/app.db"}},
		{"*/*.sqlite", []string{"e/x.sqlite"}},
		{"nope/*.db", nil},
	} {
		if got := walkAll(t, root, tc.pattern); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.pattern, got, tc.want)
		}
	}
}

func TestWalkErrors(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"", "/abs/*.db", "a//b", "../*.db", "[", "a/[x"} {
		if err := Walk(context.Background(), root, p, func(string, string) error { return nil }); err == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
	if err := Walk(context.Background(), filepath.Join(root, "missing"), "*/*.db", func(string, string) error { return nil }); err == nil {
		t.Error("missing root accepted")
	}
}

// The walk streams: fn sees tenants while the directory is still being
// read, and stopping early reads no further.
func TestWalkStreamsAndStops(t *testing.T) {
	root := t.TempDir()
	const n = 3 * readBatch
	for i := range n {
		touch(t, root, fmt.Sprintf("t%05d/app.db", i))
	}
	stop := errors.New("stop")
	calls := 0
	err := Walk(context.Background(), root, "*/app.db", func(string, string) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 10 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = Walk(ctx, root, "*/app.db", func(string, string) error {
		calls++
		if calls == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls > readBatch {
		t.Fatalf("cancelled walk: err %v after %d calls", err, calls)
	}
	if got := walkAll(t, root, "*/app.db"); len(got) != n {
		t.Fatalf("%d tenants, want %d", len(got), n)
	}
}

// Planted symlinks are never followed, wherever they point (outside the
// root or inside it), and each one matching the pattern is reported.
func TestWalkNeverFollowsSymlinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	touch(t, root, "a/app.db", "b/app.db")
	touch(t, outside, "x/app.db", "victim.db")
	for _, l := range []struct{ target, at string }{
		{filepath.Join(outside, "x"), "evildir"},            // a tenant directory linked outside
		{filepath.Join(outside, "victim.db"), "a/other.db"}, // a tenant file linked outside
		{filepath.Join(root, "b"), "alias"},                 // a directory linked inside the root
		{filepath.Join(root, "a", "app.db"), "b/alias.db"},  // a file linked inside the root
		{"nowhere", "c.db"},                                 // dangling, not matching */*.db
	} {
		if err := os.Symlink(l.target, filepath.Join(root, filepath.FromSlash(l.at))); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	skipped := map[string]string{}
	err := WalkSkipping(context.Background(), root, "*/*.db", func(tenant, path string) error {
		got = append(got, tenant)
		return nil
	}, func(tenant, reason string) { skipped[tenant] = reason })
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"a/app.db", "b/app.db"}) {
		t.Fatalf("walk published %v", got)
	}
	want := []string{"a/other.db", "alias", "b/alias.db", "c.db", "evildir"}
	var gotSkipped []string
	for k, reason := range skipped {
		gotSkipped = append(gotSkipped, k)
		if !strings.Contains(reason, "symlink") {
			t.Errorf("%s skipped for %q", k, reason)
		}
	}
	sort.Strings(gotSkipped)
	if !reflect.DeepEqual(gotSkipped, want) {
		t.Fatalf("skipped %v, want %v", gotSkipped, want)
	}
	// A literal pattern segment is not followed either.
	got = nil
	if err := Walk(context.Background(), root, "evildir/app.db", func(tenant, _ string) error { got = append(got, tenant); return nil }); err != nil || got != nil {
		t.Fatalf("literal segment through a symlink: %v %v", got, err)
	}
}

// TestWalkAheadIsTheSequentialWalk: reading tenant directories ahead, in
// parallel, changes nothing a caller sees: the same tenants and skips in
// the same order (the listing's), over more directories than the window,
// with symlinks, pipes, stray files, empty directories and several DBs per
// tenant; stopping early returns fn's error and leaves no goroutine behind.
func TestWalkAheadIsTheSequentialWalk(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	touch(t, outside, "x/app.db")
	const n = 3*walkWindow + 17
	for i := range n {
		d := fmt.Sprintf("t%05d", i)
		switch i % 7 {
		case 0:
			touch(t, root, d+"/app.db", d+"/b.db", d+"/notes.txt")
		case 1:
			os.MkdirAll(filepath.Join(root, d), 0o755) // empty
		case 2:
			touch(t, root, d+"/real.db")
			os.Symlink(filepath.Join(root, d, "real.db"), filepath.Join(root, d, "app.db"))
		case 3:
			os.Symlink(filepath.Join(outside, "x"), filepath.Join(root, d)) // a symlinked tenant directory
		case 4:
			touch(t, root, d+"/app.db")
			if err := syscall.Mkfifo(filepath.Join(root, d, "pipe.db"), 0o644); err != nil {
				t.Fatal(err)
			}
		case 5:
			touch(t, root, d) // a file where a tenant directory would be
		default:
			touch(t, root, d+"/app.db")
		}
	}
	walk := func(pattern string, sequential bool, stopAt int) ([]string, error) {
		walkSequential = sequential
		defer func() { walkSequential = false }()
		var events []string
		stop := errors.New("stop")
		err := WalkSkipping(context.Background(), root, pattern, func(tenant, path string) error {
			events = append(events, "db "+tenant+" "+path)
			if len(events) == stopAt {
				return stop
			}
			return nil
		}, func(tenant, reason string) { events = append(events, "skip "+tenant+": "+reason) })
		if stopAt > 0 && !errors.Is(err, stop) {
			t.Fatalf("%s: stopped walk returned %v", pattern, err)
		}
		return events, err
	}
	for _, pattern := range []string{"*/*.db", "*/app.db", "t000[0-4]*/*.db"} {
		seq, err := walk(pattern, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		ahead, err := walk(pattern, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(seq) < 10 || !reflect.DeepEqual(seq, ahead) {
			t.Fatalf("%s: the walk ahead saw %d events, the sequential walk %d; first difference at %d", pattern, len(ahead), len(seq), firstDiff(seq, ahead))
		}
	}
	before := runtime.NumGoroutine()
	for range 20 {
		if _, err := walk("*/*.db", false, 2*walkWindow); err == nil {
			t.Fatal("no error")
		}
	}
	goroutinesSettle(t, before)
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// goroutinesSettle fails unless the goroutine count comes back to at
// most n (goroutines that are ending may take a moment to be gone).
func goroutinesSettle(t *testing.T, n int) {
	t.Helper()
	for range 200 {
		if runtime.NumGoroutine() <= n {
			return
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%d goroutines, %d before: the stopped walks left readers behind", runtime.NumGoroutine(), n)
}
