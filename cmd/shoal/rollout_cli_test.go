package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fleet runs keep 5 backups per DB by default; `fleet status --backup-dir`
// shows the disk they take; `backup prune` applies a retention rule to a
// whole tree (dry run first).
func TestBackupRetentionCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	baks := filepath.Join(dir, "backups")
	os.MkdirAll(baks, 0o755)
	if o := shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "3"); o.code != 0 {
		t.Fatalf("demo-fleet: %+v", o)
	}
	// Seven old backups of one tenant, as seven deploys would have left
	// (tenant-0003 gets one backup in the run, tenant-0001 is empty: none).
	tenant := "tenant-0002/app.db" // behind, with data: backed up
	mirror := filepath.Join(baks, filepath.Dir(tenant))
	os.MkdirAll(mirror, 0o755)
	for i := 1; i <= 7; i++ {
		name := filepath.Base(tenant) + ".2025010" + string(rune('0'+i)) + "T000000.000000000.bak"
		os.WriteFile(filepath.Join(mirror, name), []byte("old backup"), 0o644)
	}
	if o := shoal(t, dir, nil, "run", "--root", root, "--backup-dir", baks, "--backup-root", root); o.code != 0 {
		t.Fatalf("run: %+v", o)
	}
	left, _ := filepath.Glob(filepath.Join(mirror, filepath.Base(tenant)+".*.bak"))
	if len(left) != 5 {
		t.Fatalf("%d backups of %s after a run with the default --keep, want 5: %v", len(left), tenant, left)
	}
	o := shoal(t, dir, nil, "fleet", "status", "--root", root, "--backup-dir", baks, "--json")
	var st struct {
		Backups *struct {
			Count int   `json:"count"`
			Bytes int64 `json:"bytes"`
		} `json:"backups"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &st); err != nil || st.Backups == nil || st.Backups.Count != 6 || st.Backups.Bytes <= 0 {
		t.Fatalf("fleet status --backup-dir: %+v %s", st.Backups, o.stdout)
	}
	if o := shoal(t, dir, nil, "fleet", "status", "--root", root, "--backup-dir", baks); !strings.Contains(o.stdout, "backups in "+baks+": 6 files") {
		t.Fatalf("fleet status text: %s", o.stdout)
	}
	o = shoal(t, dir, nil, "backup", "prune", "--dir", baks, "--keep", "2", "--dry-run")
	if o.code != 0 || strings.Count(o.stdout, ".bak\n") != 3 || !strings.Contains(o.stdout, "would delete 3") {
		t.Fatalf("dry run: %+v", o)
	}
	if left, _ := filepath.Glob(filepath.Join(mirror, "*.bak")); len(left) != 5 {
		t.Fatalf("the dry run deleted backups: %v", left)
	}
	if o := shoal(t, dir, nil, "backup", "prune", "--dir", baks, "--keep", "2"); o.code != 0 || !strings.Contains(o.stdout, "deleted 3") {
		t.Fatalf("prune: %+v", o)
	}
	if left, _ := filepath.Glob(filepath.Join(mirror, "*.bak")); len(left) != 2 {
		t.Fatalf("after prune: %v", left)
	}
	for _, args := range [][]string{{"backup", "prune"}, {"backup", "prune", "--dir", baks, "--keep", "-1"}, {"backup", "prune", "--dir", baks, "--keep", "0"}, {"run", "--root", root, "--keep", "-2"}} {
		if o := shoal(t, dir, nil, args...); o.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, o.code, o.stderr)
		}
	}
}

// `shoal run --max-failures 2` over a poison migration: exit 1, the one
// stderr line says the run halted, the summary groups the failures, the
// report lists every tenant (failed or skipped); --canary needs --wait in
// produce.
func TestRunHaltCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	m3, m4 := filepath.Join(dir, "m3"), filepath.Join(dir, "m4")
	os.MkdirAll(m3, 0o755)
	os.MkdirAll(m4, 0o755)
	for _, d := range []string{m3, m4} {
		os.WriteFile(filepath.Join(d, "0001_users.sql"), []byte("CREATE TABLE users (id INTEGER PRIMARY KEY);\n"), 0o644)
	}
	os.WriteFile(filepath.Join(m4, "0002_poison.sql"), []byte("SELEC broken;\n"), 0o644)
	for i := range 12 {
		db := filepath.Join(root, "t-"+string(rune('a'+i)), "app.db")
		os.MkdirAll(filepath.Dir(db), 0o755)
		if o := shoal(t, dir, nil, "migrate", "--db", db, "--dir", m3); o.code != 0 {
			t.Fatalf("migrate: %+v", o)
		}
	}
	report := filepath.Join(dir, "r.json")
	o := shoal(t, dir, nil, "run", "--root", root, "--dir", m4, "--workers", "2", "--max-failures", "2", "--report", report)
	if o.code != 1 || !strings.Contains(o.stderr, "halted: ") || !strings.Contains(o.stdout, "skipped") ||
		!strings.Contains(o.stdout, " tenants: failed: migration 0002_poison.sql") {
		t.Fatalf("run: %+v", o)
	}
	var rep struct {
		Databases []struct{ Outcome string } `json:"databases"`
	}
	if err := json.Unmarshal(readFile(t, report), &rep); err != nil || len(rep.Databases) != 12 {
		t.Fatalf("report: %v %d", err, len(rep.Databases))
	}
	for _, d := range rep.Databases {
		if d.Outcome != "failed" && d.Outcome != "skipped" {
			t.Fatalf("outcome %s", d.Outcome)
		}
	}
	for _, args := range [][]string{{"produce", "--root", root, "--canary", "3"}, {"run", "--root", root, "--max-failures", "-1"}, {"run", "--root", root, "--canary", "-1"}} {
		if o := shoal(t, dir, nil, args...); o.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, o.code, o.stderr)
		}
	}
}
