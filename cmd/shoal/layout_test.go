package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// layoutFixture is a fixture directory in another tool's layout.
func layoutFixture(t *testing.T, tool string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "engine", "testdata", "layouts", tool))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// status and check say which layout they read; --layout forces one and a
// layout that does not read the files is refused (exit 1, one line).
func TestCLILayoutReported(t *testing.T) {
	d := t.TempDir()
	goose := layoutFixture(t, "goose")
	o := shoal(t, d, nil, "status", "--db", filepath.Join(d, "t.db"), "--dir", goose)
	if o.code != 0 || !strings.Contains(o.stdout, "goose layout") {
		t.Fatalf("status: %+v", o)
	}
	o = shoal(t, d, nil, "status", "--db", filepath.Join(d, "t.db"), "--dir", goose, "--json")
	var st struct{ Layout string }
	if err := json.Unmarshal([]byte(o.stdout), &st); err != nil || st.Layout != "goose" {
		t.Fatalf("status --json: %+v %v", o, err)
	}
	o = shoal(t, d, nil, "check", "--dir", layoutFixture(t, "flyway"), "--json")
	var rep struct {
		OK     bool
		Layout string
	}
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil || !rep.OK || rep.Layout != "flyway" || o.code != 0 {
		t.Fatalf("check --json: %+v %v", o, err)
	}
	o = shoal(t, d, nil, "check", "--dir", layoutFixture(t, "diesel"))
	if o.code != 0 || !strings.Contains(o.stdout, "diesel layout") {
		t.Fatalf("check: %+v", o)
	}
	o = shoal(t, d, []string{"SHOAL_LAYOUT=sqlx"}, "status", "--db", filepath.Join(d, "t.db"), "--dir", goose)
	if o.code != 1 || !strings.Contains(o.stderr, "--layout sqlx was given") || strings.Count(strings.TrimSpace(o.stderr), "\n") != 0 {
		t.Fatalf("forced sqlx onto goose files: %+v", o)
	}
	o = shoal(t, d, nil, "migrate", "--db", filepath.Join(d, "t.db"), "--dir", goose, "--layout", "goose")
	if o.code != 0 {
		t.Fatalf("migrate --layout goose: %+v", o)
	}
}
