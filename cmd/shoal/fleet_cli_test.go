package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bytes"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
)

func TestFleetRunCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	if o := shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "30"); o.code != 0 {
		t.Fatalf("demo-fleet: %+v", o)
	}
	o := shoal(t, dir, nil, "fleet", "status", "--root", root, "--json")
	if o.code != 1 || !strings.Contains(o.stdout, `"behind"`) {
		t.Fatalf("fleet status before: %+v", o)
	}
	report := filepath.Join(dir, "report.json")
	o = shoal(t, dir, nil, "run", "--root", root, "--workers", "3", "--report", report)
	if o.code != 0 || !strings.Contains(o.stdout, "migrated") {
		t.Fatalf("run: %+v", o)
	}
	var rep map[string]json.RawMessage
	data := readFile(t, report)
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	var dbs []map[string]any
	json.Unmarshal(rep["databases"], &dbs)
	if len(dbs) != 30 {
		t.Fatalf("%d databases in the report", len(dbs))
	}
	for _, k := range []string{"run_id", "tenant", "path", "outcome", "from", "to", "applied", "backup", "error", "attempt", "worker", "duration_ms", "at"} {
		if _, ok := dbs[0][k]; !ok {
			t.Fatalf("result lacks %q", k)
		}
	}
	var sum map[string]int
	json.Unmarshal(rep["summary"], &sum)
	if sum["total"] != 30 || sum["migrated"] != 30 {
		t.Fatalf("summary %v", sum)
	}
	o = shoal(t, dir, nil, "fleet", "status", "--root", root, "--json")
	if o.code != 0 {
		t.Fatalf("fleet status after: %+v", o)
	}
	var st map[string]any
	json.Unmarshal([]byte(o.stdout), &st)
	if b, ok := st["behind"].([]any); !ok || len(b) != 0 {
		t.Fatalf("behind %v", st["behind"])
	}
	// again: everything current, exit 0
	o = shoal(t, dir, nil, "run", "--root", root)
	if o.code != 0 || !strings.Contains(o.stdout, "current") {
		t.Fatalf("second run: %+v", o)
	}
}

func TestFleetRunFailureCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "4")
	fleettest.Unmanaged(t, filepath.Join(root, "legacy", "app.db"))
	o := shoal(t, dir, nil, "run", "--root", root, "--report", filepath.Join(dir, "r.json"))
	if o.code != 1 || !strings.Contains(o.stderr, "legacy/app.db (unmanaged)") || !strings.Contains(o.stdout, "unmanaged") {
		t.Fatalf("run with an unmanaged DB: %+v", o)
	}
}

func TestFleetUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"produce"}, {"results"}, {"enqueue"}, {"fleet", "status"}, {"run"},
		{"run", "--root", dir, "--pattern", "["}, {"produce", "--root", dir, "--run-id", "a.b"},
		{"work", "--concurrency", "0"}, {"work", "--node", "x y"}, {"demo-fleet", "--root", dir, "--tenants", "0"},
	} {
		if o := shoal(t, dir, nil, args...); o.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, o.code, o.stderr)
		}
	}
	o := shoal(t, dir, nil, "work", "--root", dir, "--nats", "nats://127.0.0.1:1")
	if o.code != 1 || !strings.Contains(o.stderr, "cannot connect to NATS") {
		t.Fatalf("no server: %+v", o)
	}
}

func TestNoJetStreamCLI(t *testing.T) {
	t.Parallel()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	o := shoal(t, t.TempDir(), nil, "nats", "setup", "--nats", ns.ClientURL())
	if o.code != 1 || !strings.Contains(o.stderr, "JetStream") {
		t.Fatalf("no JetStream: %+v", o)
	}
}

// A distributed run: nats setup, a `shoal work` process, produce --wait,
// the same run again (no new jobs), results --json, enqueue --wait,
// metrics, then SIGTERM stops the worker with exit 0.
func TestFleetDistributedCLI(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "12")
	env := []string{"SHOAL_NATS=" + srv.URL}
	if o := shoal(t, dir, env, "nats", "setup", "--ack-wait", "5s"); o.code != 0 || !strings.Contains(o.stdout, "shoal_default_high") {
		t.Fatalf("nats setup: %+v", o)
	}
	if o := shoal(t, dir, env, "nats", "setup"); o.code != 0 {
		t.Fatalf("nats setup again: %+v", o)
	}
	port := fleettest.FreePort(t)
	work := exec.Command(shoalBin, "work", "--root", root, "--concurrency", "2", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--name", "cli-worker")
	work.Dir = dir
	work.Env = append(work.Environ(), env...)
	var werr bytes.Buffer
	work.Stderr = &werr
	if err := work.Start(); err != nil {
		t.Fatal(err)
	}
	defer work.Process.Kill()
	get := func(p string) (int, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, p))
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	fleettest.Eventually(t, 15*time.Second, "worker ready", func() bool { c, _ := get("/readyz"); return c == 200 })

	report := filepath.Join(dir, "report.json")
	o := shoal(t, dir, env, "produce", "--root", root, "--run-id", "cli-1", "--wait", "--report", report)
	if o.code != 0 || !strings.Contains(o.stdout, "migrated") || !strings.Contains(o.stderr, "12 jobs (12 new") {
		t.Fatalf("produce --wait: %+v", o)
	}
	// The same run id again, every DB now at head: no new job; the
	// producer reports them current itself.
	o = shoal(t, dir, env, "produce", "--root", root, "--run-id", "cli-1")
	if o.code != 0 || !strings.Contains(o.stderr, "0 jobs (0 new, 0 already published), 12 at head reported current by the producer") {
		t.Fatalf("same run again: %+v", o)
	}
	o = shoal(t, dir, env, "results", "--run-id", "cli-1", "--json")
	var rep fleet.Report
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil || o.code != 0 || len(rep.Databases) != 12 || rep.Summary.Total != 12 {
		t.Fatalf("results --json: %+v (%v)", o, err)
	}
	o = shoal(t, dir, env, "results", "--run-id", "cli-1")
	if o.code != 0 || !strings.Contains(o.stdout, "tenant-0001/app.db") {
		t.Fatalf("results: %+v", o)
	}
	o = shoal(t, dir, env, "results", "--run-id", "cli-1", "--follow")
	if o.code != 0 || !strings.Contains(o.stderr, "12/12 done") {
		t.Fatalf("results --follow of a finished run: %+v", o)
	}
	if o := shoal(t, dir, env, "results", "--run-id", "nope"); o.code != 1 {
		t.Fatalf("unknown run: %+v", o)
	}
	o = shoal(t, dir, env, "produce", "--root", root, "--only-behind", "--run-id", "cli-2")
	if o.code != 0 || !strings.Contains(o.stderr, "0 jobs") || !strings.Contains(o.stderr, "12 skipped at head") {
		t.Fatalf("only-behind: %+v", o)
	}
	o = shoal(t, dir, env, "enqueue", "--root", root, "--db", filepath.Join(root, "tenant-0003", "app.db"), "--wait", "--json", "--timeout", "20s")
	var r fleet.Result
	if err := json.Unmarshal([]byte(o.stdout), &r); err != nil || o.code != 0 || r.Tenant != "tenant-0003/app.db" || r.Outcome != "current" || r.Worker != "cli-worker" {
		t.Fatalf("enqueue --wait: %+v %v", o, err)
	}
	fleettest.Unmanaged(t, filepath.Join(root, "legacy", "app.db"))
	o = shoal(t, dir, env, "enqueue", "--root", root, "--db", filepath.Join(root, "legacy", "app.db"), "--wait", "--timeout", "20s")
	if o.code != 1 || !strings.Contains(o.stderr, "unmanaged") {
		t.Fatalf("enqueue of an unmanaged DB: %+v", o)
	}
	_, metrics := get("/metrics")
	if !strings.Contains(metrics, `shoal_worker_jobs_total{outcome="migrated"} 12`) || !strings.Contains(metrics, `shoal_worker_jobs_total{outcome="unmanaged"} 1`) {
		t.Fatalf("metrics:\n%s", metrics)
	}
	work.Process.Signal(syscall.SIGTERM)
	if err := work.Wait(); err != nil {
		t.Fatalf("worker after SIGTERM: %v\n%s", err, werr.String())
	}
	if !strings.Contains(werr.String(), `"run_id":"cli-1"`) || !strings.Contains(werr.String(), `"tenant":"tenant-0001/app.db"`) {
		t.Fatalf("worker logs lack run_id/tenant:\n%s", werr.String())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// `shoal work` needs its tenant root; `enqueue` checks the same confinement
// rule as the workers before publishing anything.
func TestConfinementCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := shoal(t, dir, nil, "work", "--nats", "nats://127.0.0.1:1")
	if o.code != 2 || !strings.Contains(o.stderr, "missing --root (or SHOAL_ROOT)") {
		t.Fatalf("work without --root: %+v", o)
	}
	if o := shoal(t, dir, nil, "work", "--root", filepath.Join(dir, "nope"), "--nats", "nats://127.0.0.1:1"); o.code != 1 || !strings.Contains(o.stderr, "--root") {
		t.Fatalf("work with a missing root: %+v", o)
	}
	root, outside := filepath.Join(dir, "tenants"), t.TempDir()
	fleettest.Fleet(t, fleettest.Engine(t), root, 1, nil)
	os.WriteFile(filepath.Join(outside, "victim.db"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(outside, "victim.db"), filepath.Join(root, "t-000", "link.db"))
	os.Symlink(outside, filepath.Join(root, "linkdir"))
	env := []string{"SHOAL_NATS=nats://127.0.0.1:1"} // never reached
	if o := shoal(t, dir, env, "enqueue", "--db", filepath.Join(root, "t-000", "app.db")); o.code != 2 || !strings.Contains(o.stderr, "--root") {
		t.Fatalf("enqueue without --root: %+v", o)
	}
	for _, db := range []string{filepath.Join(outside, "victim.db"), filepath.Join(root, "..", filepath.Base(outside), "victim.db")} {
		if o := shoal(t, dir, env, "enqueue", "--root", root, "--db", db); o.code != 2 || !strings.Contains(o.stderr, "not beneath --root") {
			t.Fatalf("enqueue %s: %+v", db, o)
		}
	}
	for _, db := range []string{filepath.Join(root, "t-000", "link.db"), filepath.Join(root, "linkdir", "victim.db")} {
		if o := shoal(t, dir, env, "enqueue", "--root", root, "--db", db); o.code != 1 || !strings.Contains(o.stderr, "symlink") {
			t.Fatalf("enqueue %s: %+v", db, o)
		}
	}
	if o := shoal(t, dir, env, "enqueue", "--root", root, "--db", filepath.Join(root, "gone", "app.db")); o.code != 1 || !strings.Contains(o.stderr, "does not exist") {
		t.Fatalf("enqueue of a missing tenant: %+v", o)
	}
	if o := shoal(t, dir, env, "produce", "--root", root, "--run-id", "_rejected"); o.code != 2 || !strings.Contains(o.stderr, "reserved") {
		t.Fatalf("produce under a reserved run id: %+v", o)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim.db")); string(b) != "x" {
		t.Fatal("victim changed")
	}
}

// TestRunReportToAPipe: --report naming a FIFO or /dev/stdout (a pipe
// here) writes the report into it and leaves it what it was: the report
// was once written beside it and renamed over it, which turned
// `--report /dev/null` into a regular file in /dev.
func TestRunReportToAPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	if o := shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "3"); o.code != 0 {
		t.Fatalf("demo-fleet: %+v", o)
	}
	fifo := filepath.Join(dir, "report.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- b
	}()
	o := shoal(t, dir, nil, "--log-level", "error", "run", "--root", root, "--report", fifo)
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 || o.code != 0 {
		t.Fatalf("run: %+v; the FIFO is now %v (%v)", o, st.Mode(), err)
	}
	var rep fleet.Report
	if err := json.Unmarshal(<-got, &rep); err != nil || rep.Summary.Total != 3 {
		t.Fatalf("report read from the FIFO: %+v, %v", rep.Summary, err)
	}
	o = shoal(t, dir, nil, "--log-level", "error", "run", "--root", root, "--report", "/dev/stdout")
	i := strings.Index(o.stdout, "{\n  \"run_id\"")
	if o.code != 0 || i < 0 || json.NewDecoder(strings.NewReader(o.stdout[i:])).Decode(&rep) != nil || rep.Summary.Total != 3 {
		t.Fatalf("run --report /dev/stdout: %+v", o)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%d entries in %s, want the tree and the FIFO only", len(entries), dir)
	}
	// stdout redirected to a file: the report comes after the summary and
	// before the line that says where it went, none written over another.
	out, err := os.Create(filepath.Join(t.TempDir(), "out.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shoalBin, "--log-level", "error", "run", "--root", root, "--report", "/dev/stdout")
	cmd.Dir, cmd.Stdout = dir, out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	text := string(readFile(t, out.Name()))
	sum, body, tail := strings.Index(text, "outcome  count"), strings.Index(text, "{\n  \"run_id\""), strings.Index(text, "report written to /dev/stdout")
	if sum < 0 || body < sum || tail < body || json.NewDecoder(strings.NewReader(text[body:])).Decode(&rep) != nil || rep.Summary.Total != 3 {
		t.Fatalf("stdout redirected to a file:\n%s", text)
	}
}
