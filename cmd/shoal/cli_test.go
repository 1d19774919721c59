package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var shoalBin string

// TestMain builds the real binary once: the CLI is tested as users run it.
func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "shoal-cli")
	if err != nil {
		panic(err)
	}
	shoalBin = filepath.Join(d, "shoal")
	cmd := exec.Command("go", "build", "-o", shoalBin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

type outcome struct {
	code           int
	stdout, stderr string
}

// shoal runs the binary in dir with args and extra env.
func shoal(t *testing.T, dir string, env []string, args ...string) outcome {
	t.Helper()
	cmd := exec.Command(shoalBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return outcome{code, so.String(), se.String()}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrateEmbeddedDefaultThenCurrent(t *testing.T) {
	d := t.TempDir()
	db := filepath.Join(d, "t.db")
	o := shoal(t, d, nil, "migrate", "--db", db)
	if o.code != 0 || !strings.Contains(o.stdout, "migrated from 0 to 6") {
		t.Fatalf("%+v", o)
	}
	o = shoal(t, d, []string{"SHOAL_DB=" + db}, "migrate", "--json")
	var r map[string]any
	if err := json.Unmarshal([]byte(o.stdout), &r); err != nil || o.code != 0 {
		t.Fatalf("%v %+v", err, o)
	}
	for _, k := range []string{"run_id", "tenant", "path", "outcome", "from", "to", "applied", "backup", "error", "attempt", "worker", "duration_ms", "at"} {
		if _, ok := r[k]; !ok {
			t.Fatalf("result lacks %q: %s", k, o.stdout)
		}
	}
	if r["outcome"] != "current" || r["applied"] == nil {
		t.Fatalf("%s", o.stdout)
	}
	o = shoal(t, d, nil, "status", "--db", db, "--json")
	var s map[string]any
	json.Unmarshal([]byte(o.stdout), &s)
	if o.code != 0 || s["version"] != float64(6) || s["head"] != float64(6) {
		t.Fatalf("%+v", o)
	}
	if p, ok := s["pending"].([]any); !ok || len(p) != 0 {
		t.Fatalf("pending must be [] not null: %s", o.stdout)
	}
}

func TestStatusOfMissingFileCreatesNothing(t *testing.T) {
	d := t.TempDir()
	db := filepath.Join(d, "none.db")
	o := shoal(t, d, nil, "status", "--db", db, "--json")
	var s struct {
		Version int64
		Pending []any
	}
	json.Unmarshal([]byte(o.stdout), &s)
	if o.code != 0 || s.Version != 0 || len(s.Pending) != 6 {
		t.Fatalf("%+v", o)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatal("status created the file")
	}
}

// Bad input: exit codes and one clear first line on stderr, even with JSON logs.
func TestErrorsAndExitCodes(t *testing.T) {
	d := t.TempDir()
	garbage := filepath.Join(d, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("garbage!"), 100), 0o644)
	writeFiles(t, d, map[string]string{
		"dup/0001_a.sql":  "CREATE TABLE a (x);",
		"dup/001_b.sql":   "CREATE TABLE b (x);",
		"utf/0001_a.sql":  "CREATE TABLE a (x); -- \xff\xfe",
		"typo/0001.sql":   "CREATE TABLE a (x);",
		"bad/0001_a.sql":  "CREATE TABLE a (x);\nCREATE TABLE a (x);",
		"good/0001_a.sql": "CREATE TABLE a (x);",
	})
	cases := []struct {
		args  []string
		code  int
		first string
	}{
		{[]string{"migrate"}, 2, "missing --db"},
		{[]string{"migrate", "--db", "x.db", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"nosuchcommand"}, 2, ""},
		{[]string{"migrate", "--db", garbage}, 1, "not a SQLite database"},
		{[]string{"migrate", "--db", d}, 1, "is a directory"},
		{[]string{"migrate", "--db", filepath.Join(d, "x.db"), "--dir", filepath.Join(d, "dup")}, 1, "0001_a.sql and 001_b.sql"},
		{[]string{"migrate", "--db", filepath.Join(d, "x.db"), "--dir", filepath.Join(d, "utf")}, 1, "UTF-8"},
		{[]string{"migrate", "--db", filepath.Join(d, "x.db"), "--dir", filepath.Join(d, "typo")}, 1, "0001.sql"},
		{[]string{"migrate", "--db", filepath.Join(d, "x.db"), "--dir", filepath.Join(d, "missing")}, 1, "missing"},
		{[]string{"migrate", "--db", filepath.Join(d, "y.db"), "--dir", filepath.Join(d, "bad")}, 1, "statement 2 (line 2)"},
	}
	for _, tc := range cases {
		before, _ := os.ReadFile(garbage)
		o := shoal(t, d, nil, tc.args...)
		if o.code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, o.code, tc.code, o.stderr)
			continue
		}
		first := strings.SplitN(o.stderr, "\n", 2)[0]
		if tc.code != 0 && tc.first != "" && (!strings.HasPrefix(first, "shoal: ") || !strings.Contains(first, tc.first)) {
			t.Errorf("%v: first stderr line %q does not say %q", tc.args, first, tc.first)
		}
		if after, _ := os.ReadFile(garbage); !bytes.Equal(before, after) {
			t.Fatalf("%v modified the garbage file", tc.args)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "x.db")); !os.IsNotExist(err) {
		t.Fatal("an invalid migrations directory still created the DB")
	}
}

func TestNewAndInit(t *testing.T) {
	d := t.TempDir()
	if o := shoal(t, d, nil, "new", "x"); o.code != 1 || !strings.Contains(o.stderr, "shoal init") {
		t.Fatalf("new without a directory: %+v", o)
	}
	if o := shoal(t, d, nil, "init"); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	o := shoal(t, d, nil, "new", "Add Users!")
	if o.code != 0 || strings.TrimSpace(o.stdout) != filepath.Join("migrations", "0001_add_users.sql") {
		t.Fatalf("%+v", o)
	}
	o = shoal(t, d, nil, "new", "second")
	if strings.TrimSpace(o.stdout) != filepath.Join("migrations", "0002_second.sql") {
		t.Fatalf("%+v", o)
	}
	// ./migrations now exists, so it is the default directory. The empty
	// templates are refused, naming the first, and nothing is created.
	db := filepath.Join(d, "t.db")
	if o := shoal(t, d, nil, "migrate", "--db", db); o.code != 1 || !strings.Contains(o.stderr, "0001_add_users.sql") || !strings.Contains(o.stderr, "no statement") {
		t.Fatalf("%+v", o)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatal("migrating an empty template created the DB")
	}
	for _, f := range []string{"0001_add_users.sql", "0002_second.sql"} {
		if err := os.WriteFile(filepath.Join(d, "migrations", f), []byte("-- migrate:up\nCREATE TABLE t"+f[:4]+" (x);\n-- migrate:down\nDROP TABLE t"+f[:4]+";\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if o := shoal(t, d, nil, "migrate", "--db", db); o.code != 0 || !strings.Contains(o.stdout, "to 2") {
		t.Fatalf("%+v", o)
	}
}
