package tenants

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExplainEmptySuggestsPattern(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"t1.db", "t2.db", "notes.txt", "deep/a/b/x.db"} {
		p := filepath.Join(root, filepath.FromSlash(f))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
	}
	e := ExplainEmpty(root, DefaultPattern)
	if e.Suggest != "*.db" || len(e.Found) != 2 || e.Found[0] != filepath.Join(root, "t1.db") || !errors.Is(e, ErrEmptyFleet) {
		t.Fatalf("%+v", e)
	}
	if msg := e.Error(); !strings.Contains(msg, "--pattern '*/*.db'") || !strings.Contains(msg, "try --pattern '*.db'") || !strings.Contains(msg, "--allow-empty") {
		t.Fatal(msg)
	}
	// nothing anywhere: no suggestion
	if e := ExplainEmpty(t.TempDir(), DefaultPattern); e.Suggest != "" || len(e.Found) != 0 {
		t.Fatalf("%+v", e)
	}
	// a missing root or a file
	if err := CheckRoot(filepath.Join(root, "nope")); !errors.Is(err, ErrRoot) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	if err := CheckRoot(filepath.Join(root, "t1.db")); !errors.Is(err, ErrRoot) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatal(err)
	}
}
