package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
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

// enroll --from takes over another tool's history (here dbmate's, written
// by hand as dbmate writes it); an unknown tool is a usage error; a wrong
// one a refusal (exit 1).
func TestCLIEnrollFrom(t *testing.T) {
	d := t.TempDir()
	dir := layoutFixture(t, "golang-migrate")
	db := filepath.Join(d, "t.db")
	o := shoal(t, d, nil, "migrate", "--db", db, "--dir", dir, "--to", "2")
	if o.code != 0 {
		t.Fatalf("%+v", o)
	}
	// Turn it into a golang-migrate DB at version 2.
	sqlite(t, db, "DROP TABLE shoal_migrations", "DROP TABLE shoal_meta", "PRAGMA application_id = 0", "PRAGMA user_version = 0",
		"CREATE TABLE schema_migrations (version uint64, dirty bool)", "CREATE UNIQUE INDEX version_unique ON schema_migrations (version)",
		"INSERT INTO schema_migrations VALUES (2, 0)")
	o = shoal(t, d, nil, "enroll", "--db", db, "--dir", dir, "--from", "liquibase")
	if o.code != 2 {
		t.Fatalf("unknown tool: %+v", o)
	}
	o = shoal(t, d, nil, "enroll", "--db", db, "--dir", dir, "--from", "goose")
	if o.code != 1 || !strings.Contains(o.stderr, "no goose history table") {
		t.Fatalf("wrong tool: %+v", o)
	}
	o = shoal(t, d, nil, "enroll", "--db", db, "--dir", dir, "--from", "golang-migrate", "--json")
	var en struct {
		Version int64
		From    string
	}
	if o.code != 0 || json.Unmarshal([]byte(o.stdout), &en) != nil || en.Version != 2 || en.From != "golang-migrate" {
		t.Fatalf("enroll --from golang-migrate: %+v", o)
	}
	if o = shoal(t, d, nil, "migrate", "--db", db, "--dir", dir); o.code != 0 {
		t.Fatalf("%+v", o)
	}
}

// The shoal binary links neither goose nor golang-migrate: they are test
// dependencies only.
func TestBinaryLinksNoOtherTool(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, dep := range []string{"github.com/pressly/goose", "github.com/golang-migrate/migrate"} {
		if strings.Contains(string(out), dep) {
			t.Errorf("the shoal binary links %s", dep)
		}
	}
}

// sqlite runs statements on a DB file.
func sqlite(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// check --since and hash --baseline: old findings are history (exit 0,
// reported), new ones fail (exit 1).
func TestCLICheckBaseline(t *testing.T) {
	d := t.TempDir()
	m := filepath.Join(d, "m")
	writeFiles(t, d, map[string]string{
		"m/0001_a.sql": "CREATE TABLE IF NOT EXISTS a (x);\n",
		"m/0002_b.sql": "PRAGMA foreign_keys=OFF;\nCREATE TABLE b (x);\nPRAGMA foreign_keys=ON;\n",
	})
	if o := shoal(t, d, nil, "check", "--dir", m); o.code != 1 {
		t.Fatalf("without a baseline: %+v", o)
	}
	o := shoal(t, d, nil, "check", "--dir", m, "--since", "2")
	if o.code != 0 || !strings.Contains(o.stdout, "history") {
		t.Fatalf("--since 2: %+v", o)
	}
	if o = shoal(t, d, nil, "hash", "--dir", m, "--baseline"); o.code != 0 {
		t.Fatalf("hash --baseline: %+v", o)
	}
	if o = shoal(t, d, nil, "check", "--dir", m); o.code != 0 {
		t.Fatalf("check after hash --baseline: %+v", o)
	}
	writeFiles(t, d, map[string]string{"m/0003_c.sql": "CREATE TABLE IF NOT EXISTS c (x);\n"})
	if o = shoal(t, d, nil, "hash", "--dir", m); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	if o = shoal(t, d, nil, "check", "--dir", m); o.code != 1 || !strings.Contains(o.stderr, "0003_c.sql") {
		t.Fatalf("a new finding after the baseline: %+v", o)
	}
}

// A migration that calls an application function fails with a line that
// says so and how to provide it.
func TestCLIMissingFunction(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{
		"m/0001_t.sql": "CREATE TABLE t (a BLOB, b TEXT);\nINSERT INTO t (a) VALUES (x'00');\n",
		"m/0002_b.sql": "UPDATE t SET b = BIN2B64(a);\n",
	})
	o := shoal(t, d, nil, "migrate", "--db", filepath.Join(d, "t.db"), "--dir", filepath.Join(d, "m"))
	first := strings.SplitN(o.stderr, "\n", 2)[0]
	if o.code != 1 || !strings.Contains(first, "no such function: BIN2B64") || !strings.Contains(first, "application function") || !strings.Contains(first, "engine.Options.Functions") {
		t.Fatalf("%+v", o)
	}
}

// shoal run --adopt over a goose fleet (goose's table written as goose
// writes it): every tenant ends adopted with adopted_from, exit 0; without
// --adopt they are unmanaged, exit 1.
func TestCLIRunAdopt(t *testing.T) {
	d := t.TempDir()
	dir := layoutFixture(t, "goose")
	root := filepath.Join(d, "tenants")
	for _, tn := range []string{"a", "b"} {
		db := filepath.Join(root, tn, "app.db")
		writeFiles(t, d, map[string]string{"tenants/" + tn + "/.keep": ""})
		o := shoal(t, d, nil, "migrate", "--db", db, "--dir", dir, "--to", "2")
		if o.code != 0 {
			t.Fatalf("%+v", o)
		}
		sqlite(t, db, "DROP TABLE shoal_migrations", "DROP TABLE shoal_meta", "PRAGMA application_id = 0", "PRAGMA user_version = 0",
			"CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')))",
			"INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1), (1, 1), (2, 1)")
	}
	if o := shoal(t, d, nil, "run", "--root", root, "--dir", dir); o.code != 1 {
		t.Fatalf("without --adopt: %+v", o)
	}
	report := filepath.Join(d, "r.json")
	o := shoal(t, d, nil, "run", "--root", root, "--dir", dir, "--adopt", "--report", report)
	if o.code != 0 {
		t.Fatalf("run --adopt: %+v", o)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Databases []struct {
			Outcome     string  `json:"outcome"`
			AdoptedFrom *string `json:"adopted_from"`
		} `json:"databases"`
	}
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Databases) != 2 {
		t.Fatalf("%s %v", data, err)
	}
	for _, r := range rep.Databases {
		if r.Outcome != "adopted" || r.AdoptedFrom == nil || !strings.Contains(*r.AdoptedFrom, "goose_db_version") {
			t.Fatalf("%s", data)
		}
	}
}

// shoal new refuses to write a shoal-named file into another tool's
// directory (it would mix layouts).
func TestCLINewInForeignLayout(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"m/00001_a.sql": "-- +goose Up\nCREATE TABLE a (x);\n"})
	o := shoal(t, d, nil, "new", "--dir", filepath.Join(d, "m"), "b")
	if o.code != 1 || !strings.Contains(o.stderr, "goose's layout") {
		t.Fatalf("%+v", o)
	}
	if entries, _ := os.ReadDir(filepath.Join(d, "m")); len(entries) != 1 {
		t.Fatalf("a file was written: %v", entries)
	}
}
