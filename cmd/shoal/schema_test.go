package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const twoMigrations = `-- migrate:up
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
-- migrate:down
DROP TABLE users;
`

func TestSchemaCommand(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{
		"m/0001_users.sql": twoMigrations,
		"m/0002_notes.sql": "-- migrate:up\nCREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));\nCREATE INDEX notes_user ON notes(user_id);\n-- migrate:down\nDROP TABLE notes;\n",
	})
	o := shoal(t, d, nil, "schema", "--dir", "m")
	want := "CREATE TABLE notes(id INTEGER PRIMARY KEY,user_id INTEGER REFERENCES users(id));\n\n" +
		"CREATE TABLE users(id INTEGER PRIMARY KEY,email TEXT NOT NULL);\n\n" +
		"CREATE INDEX notes_user ON notes(user_id);\n"
	if o.code != 0 || o.stdout != want {
		t.Fatalf("%+v", o)
	}
	// The same from a migrated DB, and shoal's own tables are not shown.
	db := filepath.Join(d, "t.db")
	if o := shoal(t, d, nil, "migrate", "--dir", "m", "--db", db); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, d, nil, "schema", "--db", db); o.code != 0 || o.stdout != want {
		t.Fatalf("%+v", o)
	}
	o = shoal(t, d, nil, "schema", "--db", db, "--json")
	var js struct {
		Schema []map[string]string
		SQL    string
	}
	if err := json.Unmarshal([]byte(o.stdout), &js); err != nil || len(js.Schema) != 3 || js.SQL != want {
		t.Fatalf("%v %+v", err, o)
	}
	// --write: schema.sql beside the migrations directory.
	if o := shoal(t, d, nil, "schema", "--dir", "m", "--write"); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	data, err := os.ReadFile(filepath.Join(d, "schema.sql"))
	if err != nil || !strings.HasSuffix(string(data), want) || !strings.HasPrefix(string(data), "-- ") {
		t.Fatalf("%v %q", err, data)
	}
	if _, err := os.Stat(filepath.Join(d, "m", "schema.sql")); !os.IsNotExist(err) {
		t.Fatal("schema.sql must not go inside the migrations directory")
	}
	// Refusals.
	empty := t.TempDir()
	if o := shoal(t, empty, nil, "schema", "--write"); o.code != 1 || !strings.Contains(o.stderr, "--dir") {
		t.Fatalf("--write with the embedded default: %+v", o)
	}
	if _, err := os.Stat(filepath.Join(empty, "schema.sql")); !os.IsNotExist(err) {
		t.Fatal("written anyway")
	}
	if o := shoal(t, empty, nil, "schema"); o.code != 0 || !strings.Contains(o.stdout, "CREATE TABLE") {
		t.Fatalf("the embedded default prints: %+v", o)
	}
	if o := shoal(t, d, nil, "schema", "--db", db, "--write"); o.code != 2 {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, d, nil, "schema", "--db", filepath.Join(d, "none.db")); o.code != 1 || !strings.HasPrefix(o.stderr, "shoal: ") {
		t.Fatalf("%+v", o)
	}
	if _, err := os.Stat(filepath.Join(d, "none.db")); !os.IsNotExist(err) {
		t.Fatal("schema --db created the file")
	}
}

func TestCheckCommand(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"m/0001_users.sql": twoMigrations})
	if o := shoal(t, d, nil, "check", "--dir", "m"); o.code != 0 || !strings.Contains(o.stdout, "ok") {
		t.Fatalf("%+v", o)
	}
	o := shoal(t, d, nil, "check", "--dir", "m", "--json")
	var rep map[string]any
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil || o.code != 0 || rep["ok"] != true {
		t.Fatalf("%v %+v", err, o)
	}
	for _, k := range []string{"problems", "lint"} {
		if v, ok := rep[k].([]any); !ok || len(v) != 0 {
			t.Fatalf("%s must be [] not null: %s", k, o.stdout)
		}
	}

	// A destructive change: a warning, an error with --strict.
	writeFiles(t, d, map[string]string{"m/0002_drop.sql": "\nDROP TABLE users;\n"})
	o = shoal(t, d, nil, "check", "--dir", "m", "--json")
	json.Unmarshal([]byte(o.stdout), &rep)
	lint := rep["lint"].([]any)
	if o.code != 0 || len(lint) != 1 {
		t.Fatalf("%+v", o)
	}
	f := lint[0].(map[string]any)
	for k, want := range map[string]any{"code": "SH001", "file": "0002_drop.sql", "line": float64(2), "severity": "warning"} {
		if f[k] != want {
			t.Fatalf("%s = %v, want %v: %s", k, f[k], want, o.stdout)
		}
	}
	if f["fix"] == "" || f["message"] == "" {
		t.Fatal(o.stdout)
	}
	if o := shoal(t, d, nil, "check", "--dir", "m", "--strict"); o.code != 1 || !strings.Contains(o.stderr, "SH001") {
		t.Fatalf("%+v", o)
	}
	os.Remove(filepath.Join(d, "m", "0002_drop.sql"))

	// An SQL error names file and line, on the first stderr line.
	writeFiles(t, d, map[string]string{"m/0002_bad.sql": "CREATE TABLE a (x);\n\nINSERT INTO nosuch VALUES (1);\n"})
	o = shoal(t, d, nil, "check", "--dir", "m")
	first := strings.SplitN(o.stderr, "\n", 2)[0]
	if o.code != 1 || !strings.Contains(first, "0002_bad.sql:3") || !strings.Contains(first, "no such table") {
		t.Fatalf("%+v", o)
	}
	os.Remove(filepath.Join(d, "m", "0002_bad.sql"))

	// schema.sql drift is printed object by object.
	writeFiles(t, d, map[string]string{"schema.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT);\n"})
	o = shoal(t, d, nil, "check", "--dir", "m")
	if o.code != 1 || !strings.Contains(o.stdout, "different table users") || !strings.Contains(o.stdout, "schema.sql:") || !strings.Contains(o.stderr, "schema.sql") {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, d, nil, "schema", "--dir", "m", "--write"); o.code != 0 {
		t.Fatal(o)
	}
	if o := shoal(t, d, nil, "check", "--dir", "m"); o.code != 0 {
		t.Fatalf("after schema --write: %+v", o)
	}

	// A duplicate version is a problem, even with --json.
	writeFiles(t, d, map[string]string{"m/001_again.sql": "CREATE TABLE b (x);"})
	o = shoal(t, d, nil, "check", "--dir", "m", "--json")
	json.Unmarshal([]byte(o.stdout), &rep)
	if o.code != 1 || rep["ok"] != false || !strings.Contains(o.stderr, "renumber") {
		t.Fatalf("%+v", o)
	}
}

func TestNewWritesSumFile(t *testing.T) {
	d := t.TempDir()
	shoal(t, d, nil, "init")
	if o := shoal(t, d, nil, "new", "first"); o.code != 0 {
		t.Fatal(o)
	}
	sum, err := os.ReadFile(filepath.Join(d, "migrations", "shoal.sum"))
	if err != nil || !strings.Contains(string(sum), "0001_first.sql ") || !strings.Contains(string(sum), "\ntotal ") {
		t.Fatalf("%v %s", err, sum)
	}
	// Editing the migration without `shoal hash` fails the check, hash fixes it.
	writeFiles(t, d, map[string]string{"migrations/0001_first.sql": "CREATE TABLE a (x);"})
	if o := shoal(t, d, nil, "check"); o.code != 1 || !strings.Contains(o.stderr, "shoal hash") {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, d, nil, "hash"); o.code != 0 || !strings.Contains(o.stdout, "written") {
		t.Fatal(o)
	}
	if o := shoal(t, d, nil, "check"); o.code != 0 {
		t.Fatalf("%+v", o)
	}
}

// Two branches each add migration 0002: git reports a conflict on the sum
// file, `shoal renumber` moves the branch's one to 0003, and check passes.
func TestSumFileConflictAndRenumber(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	d := t.TempDir()
	env := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) {
		t.Helper()
		if out, err := git(args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	must("init", "-q", "-b", "main")
	shoal(t, d, nil, "init")
	shoal(t, d, nil, "new", "users")
	writeFiles(t, d, map[string]string{"migrations/0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY);"})
	shoal(t, d, nil, "hash")
	must("add", ".")
	must("commit", "-qm", "base")
	must("checkout", "-qb", "feature")
	shoal(t, d, nil, "new", "feature_tags")
	writeFiles(t, d, map[string]string{"migrations/0002_feature_tags.sql": "CREATE TABLE tags (id INTEGER PRIMARY KEY);"})
	shoal(t, d, nil, "hash")
	must("add", ".")
	must("commit", "-qm", "feature")
	must("checkout", "-q", "main")
	shoal(t, d, nil, "new", "main_notes")
	writeFiles(t, d, map[string]string{"migrations/0002_main_notes.sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY);"})
	shoal(t, d, nil, "hash")
	must("add", ".")
	must("commit", "-qm", "main")
	out, err := git("merge", "feature")
	if err == nil || !strings.Contains(out, "CONFLICT") || !strings.Contains(out, "shoal.sum") {
		t.Fatalf("the merge must conflict on shoal.sum: %v\n%s", err, out)
	}
	if o := shoal(t, d, nil, "check"); o.code != 1 || !strings.Contains(o.stdout+o.stderr, "renumber") {
		t.Fatalf("%+v", o)
	}
	o := shoal(t, d, nil, "renumber")
	if o.code != 0 || !strings.Contains(o.stdout, "0002_feature_tags.sql -> migrations/0003_feature_tags.sql") {
		t.Fatalf("%+v", o)
	}
	if _, err := os.Stat(filepath.Join(d, "migrations", "0002_main_notes.sql")); err != nil {
		t.Fatal("main's migration must stay")
	}
	if o := shoal(t, d, nil, "check"); o.code != 0 {
		t.Fatalf("%+v", o)
	}
}

func TestRenumberWithoutGit(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{
		"m/00001_a.sql": "CREATE TABLE a (x);",
		"m/00002_b.sql": "CREATE TABLE b (x);",
		"m/00003_c.sql": "CREATE TABLE c (x);",
	})
	if o := shoal(t, d, nil, "hash", "--dir", "m"); o.code != 0 {
		t.Fatal(o)
	}
	// Another branch's 2 arrives; the sum file lists ours.
	writeFiles(t, d, map[string]string{"m/2_theirs.sql": "CREATE TABLE t (x);"})
	if o := shoal(t, d, nil, "migrate", "--dir", "m", "--db", filepath.Join(d, "x.db")); o.code != 1 || !strings.Contains(o.stderr, "00002_b.sql and 2_theirs.sql") {
		t.Fatalf("%+v", o)
	}
	o := shoal(t, d, nil, "renumber", "--dir", "m")
	if o.code != 0 || !strings.Contains(o.stdout, "2_theirs.sql -> m/4_theirs.sql") {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, d, nil, "check", "--dir", "m"); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, d, nil, "renumber", "--dir", "m"); o.code != 0 || !strings.Contains(o.stdout, "nothing to renumber") {
		t.Fatalf("%+v", o)
	}
	// Naming the file moves that one.
	writeFiles(t, d, map[string]string{"m/00004_dup.sql": "CREATE TABLE u (x);"})
	if o := shoal(t, d, nil, "renumber", "--dir", "m", "00004_dup.sql"); o.code != 0 || !strings.Contains(o.stdout, "m/00005_dup.sql") {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, d, nil, "renumber", "--dir", "m", "nosuch.sql"); o.code != 2 {
		t.Fatalf("%+v", o)
	}
}

func TestDiffCommand(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"m/0001_users.sql": twoMigrations, "m/0002_idx.sql": "CREATE INDEX users_email ON users(email);"})
	db := filepath.Join(d, "t.db")
	if o := shoal(t, d, nil, "migrate", "--dir", "m", "--db", db, "--to", "1"); o.code != 0 {
		t.Fatal(o)
	}
	if o := shoal(t, d, nil, "diff", "--dir", "m", "--db", db); o.code != 0 || !strings.Contains(o.stdout, "matches version 1") {
		t.Fatalf("%+v", o)
	}
	// A hand fix on one tenant.
	writeFiles(t, d, map[string]string{"hand/0001_users.sql": twoMigrations, "hand/0002_x.sql": "CREATE TABLE x (y);"})
	if o := shoal(t, d, nil, "migrate", "--dir", filepath.Join(d, "hand"), "--db", db, "--allow-out-of-order"); o.code != 0 {
		t.Fatal(o)
	}
	// The DB now records version 2 but has table x instead of the index.
	o := shoal(t, d, nil, "diff", "--dir", "m", "--db", db, "--json")
	if o.code != 1 {
		t.Fatalf("%+v", o)
	}
	var r struct {
		Version int64
		Drift   bool
		Diffs   []struct{ Type, Name, Change string }
	}
	if err := json.Unmarshal([]byte(o.stdout), &r); err != nil || !r.Drift || r.Version != 2 || len(r.Diffs) != 2 {
		t.Fatalf("%v %+v", err, o)
	}
	if r.Diffs[0].Change != "extra" || r.Diffs[0].Name != "x" || r.Diffs[1].Change != "missing" || r.Diffs[1].Name != "users_email" {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(o.stderr, "drifted") {
		t.Fatal(o.stderr)
	}
	if o := shoal(t, d, nil, "diff", "--dir", "m"); o.code != 2 {
		t.Fatalf("missing --db: %+v", o)
	}
}

func TestAutogenCommand(t *testing.T) {
	d := t.TempDir()
	writeFiles(t, d, map[string]string{"m/0001_users.sql": twoMigrations})
	shoal(t, d, nil, "hash", "--dir", "m")
	if o := shoal(t, d, nil, "autogen", "--dir", "m", "x"); o.code != 1 || !strings.Contains(o.stderr, "schema --write") {
		t.Fatalf("no schema.sql: %+v", o)
	}
	shoal(t, d, nil, "schema", "--dir", "m", "--write")
	if o := shoal(t, d, nil, "autogen", "--dir", "m", "x"); o.code != 0 || !strings.Contains(o.stdout, "nothing to generate") {
		t.Fatalf("%+v", o)
	}
	writeFiles(t, d, map[string]string{"schema.sql": `CREATE TABLE users (id INTEGER PRIMARY KEY, mail TEXT NOT NULL, name TEXT);
CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE);
CREATE INDEX notes_user ON notes(user_id);
`})
	if o := shoal(t, d, nil, "autogen", "--dir", "m", "--rename", "users.email", "x"); o.code != 2 {
		t.Fatalf("bad --rename: %+v", o)
	}
	o := shoal(t, d, nil, "autogen", "--dir", "m", "--rename", "users.email:mail", "Add Notes")
	if o.code != 0 || strings.TrimSpace(o.stdout) != filepath.Join("m", "0002_add_notes.sql") {
		t.Fatalf("%+v", o)
	}
	body, _ := os.ReadFile(filepath.Join(d, "m", "0002_add_notes.sql"))
	for _, want := range []string{"-- migrate:up", "RENAME COLUMN email TO mail", "ADD COLUMN name TEXT", "CREATE TABLE notes", "-- migrate:down", "DROP TABLE notes"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("missing %q:\n%s", want, body)
		}
	}
	// The migration reaches schema.sql, round-trips, and the sum file knows it.
	if o := shoal(t, d, nil, "check", "--dir", "m", "--strict"); o.code != 0 {
		t.Fatalf("%+v\n%s", o, body)
	}
	if o := shoal(t, d, nil, "autogen", "--dir", "m", "again"); o.code != 0 || !strings.Contains(o.stdout, "nothing") {
		t.Fatalf("%+v", o)
	}
	// A dropped table is flagged destructive, in the file and on stderr.
	writeFiles(t, d, map[string]string{"schema.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, mail TEXT NOT NULL, name TEXT);\n"})
	o = shoal(t, d, nil, "autogen", "--dir", "m", "--dry-run", "drop_notes")
	if o.code != 0 || !strings.Contains(o.stdout, "DESTRUCTIVE: drops table notes") {
		t.Fatalf("%+v", o)
	}
	if _, err := os.Stat(filepath.Join(d, "m", "0003_drop_notes.sql")); !os.IsNotExist(err) {
		t.Fatal("--dry-run wrote the file")
	}
	if o := shoal(t, d, nil, "autogen", "--dir", "m", "drop_notes"); o.code != 0 || !strings.Contains(o.stderr, "DESTRUCTIVE") {
		t.Fatalf("%+v", o)
	}
}
