package engine

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifiedAtHead(t *testing.T) {
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);\n", "0002_b.sql": "CREATE TABLE b (x);\n"}
	e := newEngine(t, files)
	p := filepath.Join(t.TempDir(), "t.db")
	if e.VerifiedAtHead(p) {
		t.Fatal("a missing file verified")
	}
	if _, err := e.Migrate(context.Background(), p, MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	if e.VerifiedAtHead(p) {
		t.Fatal("a DB behind verified at head")
	}
	if _, err := e.Migrate(context.Background(), p, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !e.VerifiedAtHead(p) {
		t.Fatal("not verified after migrating to head")
	}
	fresh := newEngine(t, files)
	if fresh.VerifiedAtHead(p) {
		t.Fatal("a fresh handle has verified nothing")
	}
	if v, err := fresh.Version(context.Background(), p); err != nil || v != 2 || !fresh.VerifiedAtHead(p) {
		t.Fatalf("Version %d %v: at head through the header, then verified", v, err)
	}
	if err := os.WriteFile(p+".other", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Rename(p+".other", p) // replaced
	if fresh.VerifiedAtHead(p) {
		t.Fatal("a replaced file still verified")
	}
	// another migration set with the same head: not verified by its handle
	edited := newEngine(t, map[string]string{"0001_a.sql": "CREATE TABLE a (x); -- edited\n", "0002_b.sql": "CREATE TABLE b (x);\n"})
	q := filepath.Join(t.TempDir(), "u.db")
	if _, err := e.Migrate(context.Background(), q, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, err := edited.Version(context.Background(), q); err != nil || v != 2 || edited.VerifiedAtHead(q) {
		t.Fatalf("edited set: Version %d %v, verified %v", v, err, edited.VerifiedAtHead(q))
	}
}

// TestProbe: Probe's AtHead is exactly VerifiedAtHead's verdict, with or
// without the handle's cache, in both journal modes, and its State changes
// with every commit to the file (the producer's job id for a DB at head).
func TestProbe(t *testing.T) {
	ctx := context.Background()
	files := map[string]string{"0001_a.sql": "CREATE TABLE a (x);\n", "0002_b.sql": "CREATE TABLE b (x);\n"}
	for _, wal := range []bool{false, true} {
		e := newEngine(t, files)
		p := filepath.Join(t.TempDir(), "t.db")
		if pr, err := e.Probe(ctx, p); err != nil || pr.AtHead || pr.State != "" || pr.Version != 0 {
			t.Fatalf("wal=%v missing file: %+v %v", wal, pr, err)
		}
		if _, err := e.Migrate(ctx, p, MigrateOptions{To: 1}); err != nil {
			t.Fatal(err)
		}
		if wal {
			db, err := sql.Open("sqlite", p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("PRAGMA journal_mode=WAL"); err != nil {
				t.Fatal(err)
			}
			db.Close()
		}
		if pr, err := e.Probe(ctx, p); err != nil || pr.AtHead || pr.State != "" || pr.Version != 1 {
			t.Fatalf("wal=%v behind: %+v %v", wal, pr, err)
		}
		if _, err := e.Migrate(ctx, p, MigrateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, cache := range []int{0, -1} { // cached, and a handle that caches nothing
			h := newEngine(t, files)
			h.SetAtHeadCache(cache)
			first, err := h.Probe(ctx, p)
			if err != nil || !first.AtHead || first.Version != 2 || first.State == "" {
				t.Fatalf("wal=%v cache=%d at head: %+v %v", wal, cache, first, err)
			}
			if wal != strings.Contains(first.State, "wal") {
				t.Fatalf("wal=%v: state %q", wal, first.State)
			}
			again, err := h.Probe(ctx, p)
			if err != nil || again != first {
				t.Fatalf("wal=%v cache=%d unchanged file: %+v then %+v (%v)", wal, cache, first, again, err)
			}
			// An application commits: another state.
			db, err := sql.Open("sqlite", p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO a VALUES (?)", cache); err != nil {
				t.Fatal(err)
			}
			db.Close()
			after, err := h.Probe(ctx, p)
			if err != nil || !after.AtHead || after.State == first.State {
				t.Fatalf("wal=%v cache=%d after a commit: %+v, before %+v (%v)", wal, cache, after, first, err)
			}
		}
	}
	// Another migration set with the same head: the version, never AtHead.
	e := newEngine(t, files)
	q := filepath.Join(t.TempDir(), "u.db")
	if _, err := e.Migrate(ctx, q, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	edited := newEngine(t, map[string]string{"0001_a.sql": "CREATE TABLE a (x); -- edited\n", "0002_b.sql": "CREATE TABLE b (x);\n"})
	if pr, err := edited.Probe(ctx, q); err != nil || pr.Version != 2 || pr.AtHead || pr.State != "" {
		t.Fatalf("edited set: %+v %v", pr, err)
	}
}
