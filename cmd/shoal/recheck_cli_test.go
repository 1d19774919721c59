package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
	"github.com/urfave/cli/v2"
)

// startWorkerCLI runs `shoal work` against url until the test ends.
func startWorkerCLI(t *testing.T, dir, root string, env []string) {
	t.Helper()
	work := exec.Command(shoalBin, "work", "--concurrency", "2", "--name", "cli-worker")
	work.Dir = dir
	work.Env = append(append(work.Environ(), env...), "SHOAL_ROOT="+root)
	var werr bytes.Buffer
	work.Stderr = &werr
	if err := work.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { work.Process.Kill(); work.Wait() })
}

// TestStragglerRecheckCLI is the reproduction, as documented in
// docs/fleet.md: the straggler re-check with a run id per day, run once,
// then a tenant put back to an old version and a new tenant at v2, then the
// same command again: both are published and migrated, the progress and
// summary count only this pass, and fleet status is at head.
func TestStragglerRecheckCLI(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "6")
	env := []string{"SHOAL_NATS=" + srv.URL}
	startWorkerCLI(t, dir, root, env)
	recheck := []string{"produce", "--root", root, "--only-behind", "--run-id", "stragglers-2026-12-07", "--wait", "--timeout", "1m"}
	o := shoal(t, dir, env, recheck...)
	if o.code != 0 || !strings.Contains(o.stderr, "6 jobs (6 new, 0 already published, 0 skipped at head)") {
		t.Fatalf("first re-check: %+v", o)
	}
	// tenant-0002 restored from an old backup, a new tenant created at v2
	old := filepath.Join(dir, "old.db")
	if o := shoal(t, dir, nil, "migrate", "--db", old, "--to", "2"); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	if err := os.Rename(old, filepath.Join(root, "tenant-0002", "app.db")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "tenant-new"), 0o755)
	if o := shoal(t, dir, nil, "migrate", "--db", filepath.Join(root, "tenant-new", "app.db"), "--to", "2"); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	o = shoal(t, dir, env, recheck...)
	if o.code != 0 || !strings.Contains(o.stderr, "2 jobs (2 new, 0 already published, 5 skipped at head)") ||
		!strings.Contains(o.stderr, "2/2 done (100%)") || !strings.Contains(o.stdout, "2 databases") {
		t.Fatalf("second re-check: %+v", o)
	}
	if !regexpMatch(o.stdout, `migrated\s+2\n`) || !regexpMatch(o.stdout, `total\s+2\n`) {
		t.Fatalf("second re-check summary must count only this pass:\n%s", o.stdout)
	}
	if o := shoal(t, dir, nil, "fleet", "status", "--root", root); o.code != 0 {
		t.Fatalf("fleet status after the re-check: %+v", o)
	}
	// The default pass lists every tenant: 7 current, reported by the producer.
	o = shoal(t, dir, env, "produce", "--root", root, "--run-id", "all-1", "--wait", "--timeout", "1m")
	if o.code != 0 || !strings.Contains(o.stderr, "0 jobs (0 new, 0 already published), 7 at head reported current by the producer") ||
		!regexpMatch(o.stdout, `current\s+7\n`) {
		t.Fatalf("default pass at head: %+v", o)
	}
	o = shoal(t, dir, env, "results", "--run-id", "all-1", "--json")
	if o.code != 0 || !strings.Contains(o.stdout, `"worker": "producer:`) || strings.Count(o.stdout, `"outcome": "current"`) != 7 {
		t.Fatalf("results of the producer's pass: %+v", o)
	}
	// --visit-all: every DB goes through the worker.
	o = shoal(t, dir, env, "produce", "--root", root, "--run-id", "all-2", "--visit-all", "--wait", "--timeout", "1m")
	if o.code != 0 || !strings.Contains(o.stderr, "7 jobs (7 new, 0 already published)") || !regexpMatch(o.stdout, `current\s+7\n`) {
		t.Fatalf("--visit-all: %+v", o)
	}
	if o := shoal(t, dir, env, "produce", "--root", root, "--visit-all", "--only-behind"); o.code != 2 {
		t.Fatalf("--visit-all --only-behind: %+v", o)
	}
}

// TestProduceNoWorkerWarnsCLI: jobs for a node no worker serves: the
// producer says so instead of waiting silently.
func TestProduceNoWorkerWarnsCLI(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "3")
	o := shoal(t, dir, []string{"SHOAL_NATS=" + srv.URL}, "produce", "--root", root, "--node", "nobody", "--wait", "--timeout", "3s", "--idle-check", "0s")
	if o.code != 1 || !strings.Contains(o.stderr, "no worker pulls them: start `shoal work --node nobody`") {
		t.Fatalf("%+v", o)
	}
}

// TestFleetRootErrorsCLI: a missing --root, a file, and a root where the
// pattern matches nothing exit 1 with one line (and a pattern that would
// match); --allow-empty accepts an empty fleet.
func TestFleetRootErrorsCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	flat := filepath.Join(dir, "flat")
	os.MkdirAll(flat, 0o755)
	if o := shoal(t, dir, nil, "migrate", "--db", filepath.Join(flat, "t1.db")); o.code != 0 {
		t.Fatalf("%+v", o)
	}
	os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644)
	for _, args := range [][]string{
		{"run", "--root", "nope"}, {"fleet", "status", "--root", "nope"}, {"produce", "--root", "nope", "--nats", "nats://127.0.0.1:1"},
		{"run", "--root", "afile"}, {"produce", "--root", "afile", "--wait", "--nats", "nats://127.0.0.1:1"},
	} {
		o := shoal(t, dir, nil, args...)
		first := strings.SplitN(o.stderr, "\n", 2)[0]
		if o.code != 1 || !strings.HasPrefix(first, "shoal: --root ") || strings.Contains(o.stderr, "re-run") || strings.Contains(o.stdout, "0 databases") {
			t.Errorf("%v: exit %d, stderr %q stdout %q", args, o.code, o.stderr, o.stdout)
		}
	}
	for _, args := range [][]string{{"run", "--root", "flat"}, {"fleet", "status", "--root", "flat"}} {
		o := shoal(t, dir, nil, args...)
		if o.code != 1 || !strings.Contains(o.stderr, "no tenant DB under --root flat matches --pattern '*/*.db'; found flat/t1.db at another depth: try --pattern '*.db'") {
			t.Errorf("%v: %+v", args, o)
		}
	}
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	if o := shoal(t, dir, nil, "run", "--root", "empty", "--allow-empty"); o.code != 0 {
		t.Errorf("--allow-empty: %+v", o)
	}
	if o := shoal(t, dir, nil, "run", "--root", "flat", "--pattern", "*.db"); o.code != 0 || !strings.Contains(o.stdout, "current") {
		t.Errorf("the suggested pattern: %+v", o)
	}
	// produce: the deployment's hint (compose sets SHOAL_EMPTY_HINT)
	srv := fleettest.StartEmbedded(t, "", 0)
	o := shoal(t, dir, []string{"SHOAL_NATS=" + srv.URL, "SHOAL_EMPTY_HINT=set SHOAL_TENANTS"}, "produce", "--root", "empty", "--wait")
	if o.code != 1 || !strings.Contains(o.stderr, "matches --pattern '*/*.db' (pass --allow-empty if an empty fleet is expected; set SHOAL_TENANTS)") {
		t.Errorf("produce on an empty root: %+v", o)
	}
}

// TestReportPathCheckedFirstCLI: an unwritable --report stops the run
// before anything is migrated.
func TestReportPathCheckedFirstCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "3")
	o := shoal(t, dir, nil, "run", "--root", root, "--report", "nodir/run.json")
	if o.code != 1 || !strings.HasPrefix(o.stderr, "shoal: --report nodir/run.json: directory nodir does not exist") || strings.Contains(o.stderr, "migrating") {
		t.Fatalf("%+v", o)
	}
	if o := shoal(t, dir, nil, "fleet", "status", "--root", root); o.code != 1 {
		t.Fatalf("the fleet was migrated anyway: %+v", o)
	}
	if o := shoal(t, dir, nil, "run", "--root", root, "--report", root); o.code != 1 || !strings.Contains(o.stderr, "is a directory") {
		t.Fatalf("%+v", o)
	}
}

// TestSummaryPrintedWhenReportFails: the summary is printed even when the
// report cannot be written at the end.
func TestSummaryPrintedWhenReportFails(t *testing.T) {
	var out, errb bytes.Buffer
	app := newApp(&out, &errb)
	c := cli.NewContext(app, nil, nil)
	now := time.Now()
	rep := &fleet.Report{RunID: "r", Summary: fleet.Summary{Total: 1, Counts: map[string]int{"migrated": 1}},
		Databases: []fleet.Result{{RunID: "r", Tenant: "a", Outcome: "migrated", At: now}}}
	err := finishReport(c, rep, filepath.Join(t.TempDir(), "gone", "r.json"))
	if err == nil || !strings.Contains(out.String(), "migrated") || !strings.Contains(err.Error(), "cannot write report") {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

func regexpMatch(s, re string) bool { return regexp.MustCompile(re).MatchString(s) }
