package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/tenants"
)

// hotEngine answers every version read as a DB left with a hot journal.
type hotEngine struct{}

func (hotEngine) Head() int64 { return 2 }
func (hotEngine) Version(_ context.Context, path string) (int64, error) {
	return 0, &engine.Error{Path: path, Kind: engine.ErrHotJournal, Detail: "a writer was killed",
		Hint: "migrate it with Engine.Migrate (it rolls the transaction back first, then migrates)"}
}
func (hotEngine) Drift(context.Context, string) ([]engine.SchemaDiff, error) { return nil, nil }

// TestFleetStatusErrorsInCLITerms: fleet status lists an unreadable DB with
// the engine's hint in the CLI's words, as `shoal status` prints it, and
// the error keeps its kind.
func TestFleetStatusErrorsInCLITerms(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, "t1", "app.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := tenants.Status(context.Background(), cliTermsEngine{hotEngine{}}, root, "*/*.db", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "run `shoal migrate --db "+db+"`") || strings.Contains(st.Errors[0], "Engine.") {
		t.Fatalf("errors %q", st.Errors)
	}
	if _, err := (cliTermsEngine{hotEngine{}}).Version(context.Background(), db); !errors.Is(err, engine.ErrHotJournal) {
		t.Fatalf("the kind is lost: %v", err)
	}
}
