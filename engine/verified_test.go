package engine

import (
	"context"
	"os"
	"path/filepath"
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
