package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// fleet enroll adopts matching DBs, leaves shoal's alone, refuses the rest,
// and says so in its report and exit code.
func TestFleetEnroll(t *testing.T) {
	d := t.TempDir()
	root := filepath.Join(d, "tenants")
	writeFiles(t, d, map[string]string{
		"m/0001_a.sql": "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);",
		"m/0002_b.sql": "CREATE TABLE b (id INTEGER PRIMARY KEY);",
	})
	mk := func(tenant string, stmts ...string) {
		p := filepath.Join(root, tenant, "app.db")
		os.MkdirAll(filepath.Dir(p), 0o755)
		db, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("old1", "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)")
	mk("old2", "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE b (id INTEGER PRIMARY KEY)")
	mk("odd", "CREATE TABLE a (id INTEGER PRIMARY KEY)")
	os.MkdirAll(filepath.Join(root, "new"), 0o755)
	if o := shoal(t, d, nil, "migrate", "--dir", filepath.Join(d, "m"), "--db", filepath.Join(root, "new", "app.db")); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	rep := filepath.Join(d, "enroll.json")
	o := shoal(t, d, nil, "fleet", "enroll", "--dir", filepath.Join(d, "m"), "--root", root, "--report", rep)
	if o.code != 1 {
		t.Fatalf("one DB cannot be enrolled: want exit 1, got %+v", o)
	}
	var r enrollReport
	b, _ := os.ReadFile(rep)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range r.Databases {
		got[e.Tenant] = e.Outcome
	}
	want := map[string]string{"old1/app.db": "enrolled", "old2/app.db": "enrolled", "odd/app.db": "refused", "new/app.db": "managed"}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: %s, want %s (report %s)", k, got[k], v, b)
		}
	}
	if r.Total != 4 || r.Enrolled != 2 || r.Refused != 1 || r.Managed != 1 {
		t.Fatalf("summary %+v", r)
	}
	// Now every matching DB migrates to head.
	if o := shoal(t, d, nil, "migrate", "--dir", filepath.Join(d, "m"), "--db", filepath.Join(root, "old1", "app.db")); o.code != 0 {
		t.Fatalf("%+v", o)
	}
}
