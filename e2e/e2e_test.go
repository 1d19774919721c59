//go:build e2e

// Package e2e runs shoal's real deployment, docker-compose.yml with the test
// override deploy/compose.test.yml, against a few hundred generated tenant
// DBs, and drills the failures a fleet meets: a worker killed mid-run, NATS
// restarted mid-run, a worker cut off the network for longer than the ack
// wait, workers scaled 1 -> 3 during a run.
//
// It needs Docker, the images shoal:e2e and shoal-nats:e2e and the host
// binary bin/shoal, all built by scripts/e2e.sh, which is the way to run it:
//
//	scripts/e2e.sh
//
// Plain `go test ./...` does not build this file (build tag e2e).
//
// Environment: E2E_TENANTS (300), E2E_WORK (a temp dir), E2E_KEEP=1 (leave
// the containers and files), E2E_SHOAL_IMAGE (shoal:e2e), E2E_NATS_IMAGE
// (shoal-nats:e2e), E2E_SHOAL_BIN (bin/shoal), E2E_PROJECT (compose project).
package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"
)

const (
	ackWait     = 5 * time.Second
	concurrency = 2
	// slowRows is the recursive CTE size of the slow migration: ~0.12s of
	// CPU per tenant (1M rows take ~0.3s here), so that every drill hits
	// workers mid-migration.
	slowRows = 400000
	fastRows = 1000
)

// result is the contract's result message.
type result struct {
	RunID   string `json:"run_id"`
	Tenant  string `json:"tenant"`
	Path    string `json:"path"`
	Outcome string `json:"outcome"`
	From    *int64 `json:"from"`
	To      *int64 `json:"to"`
	Applied []struct {
		Version int64  `json:"version"`
		Name    string `json:"name"`
	} `json:"applied"`
	Backup     *string   `json:"backup"`
	Error      *string   `json:"error"`
	Attempt    int       `json:"attempt"`
	Worker     string    `json:"worker"`
	DurationMs int64     `json:"duration_ms"`
	At         time.Time `json:"at"`
}

type report struct {
	RunID     string           `json:"run_id"`
	Summary   map[string]int64 `json:"summary"`
	Databases []result         `json:"databases"`
}

// figure is one line of the closing table.
type figure struct {
	Name         string  `json:"name"`
	Workers      string  `json:"workers"`
	Tenants      int     `json:"tenants"`
	WallSeconds  float64 `json:"wall_seconds"`
	TenantsPerS  float64 `json:"tenants_per_s"`
	Results      int     `json:"results"`
	Affected     int     `json:"tenants_affected"`
	Redelivered  int     `json:"jobs_redelivered"`
	AppliedTwice int     `json:"migrations_applied_twice"`
	NotAtHead    int     `json:"tenants_not_at_head"`
	Note         string  `json:"note"`
}

type harness struct {
	t        *testing.T
	repo     string
	work     string
	shoal    string
	compose  []string
	project  string
	env      []string
	natsPort int
	tenants  int
	head     int64

	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	figures []figure
}

func TestFleetInContainers(t *testing.T) {
	h := newHarness(t)
	h.prepare()
	h.up()

	t.Run("throughput", h.throughput)
	t.Run("stragglers", h.stragglers)
	t.Run("kill-worker", h.drillKillWorker)
	t.Run("restart-nats", h.drillRestartNATS)
	t.Run("partition-worker", h.drillPartition)
	t.Run("scale-1-to-3", h.drillScale)

	h.printFigures()
}

// ---------------------------------------------------------------------------
// setup

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func newHarness(t *testing.T) *harness {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker not installed")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("docker daemon not reachable")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, repo: repo}
	h.tenants, _ = strconv.Atoi(envOr("E2E_TENANTS", "300"))
	h.work = os.Getenv("E2E_WORK")
	if h.work == "" {
		h.work = t.TempDir()
	}
	h.shoal = envOr("E2E_SHOAL_BIN", filepath.Join(repo, "bin", "shoal"))
	if _, err := os.Stat(h.shoal); err != nil {
		t.Fatalf("host binary %s: %v (scripts/e2e.sh builds it)", h.shoal, err)
	}
	shoalImage := envOr("E2E_SHOAL_IMAGE", "shoal:e2e")
	natsImage := envOr("E2E_NATS_IMAGE", "shoal-nats:e2e")
	for _, img := range []string{shoalImage, natsImage} {
		if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil {
			t.Fatalf("image %s not built (scripts/e2e.sh builds it)", img)
		}
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		h.compose = []string{"docker", "compose"}
	} else if p, err := exec.LookPath("docker-compose"); err == nil {
		h.compose = []string{p}
	} else {
		t.Skip("neither `docker compose` nor docker-compose is installed")
	}
	h.project = envOr("E2E_PROJECT", fmt.Sprintf("shoale2e%d", os.Getpid()))
	h.natsPort = freePort(t)
	h.env = append(os.Environ(),
		"COMPOSE_PROJECT_NAME="+h.project,
		"SHOAL_IMAGE="+shoalImage,
		"E2E_NATS_IMAGE="+natsImage,
		"E2E_NATS_PORT="+strconv.Itoa(h.natsPort),
		"SHOAL_TENANTS="+filepath.Join(h.work, "tenants"),
		"SHOAL_BACKUPS="+filepath.Join(h.work, "backups"),
		"E2E_REPORTS="+filepath.Join(h.work, "reports"),
		"SHOAL_CONCURRENCY="+strconv.Itoa(concurrency),
		"SHOAL_ACK_WAIT="+ackWait.String(),
		"SHOAL_MAX_DELIVER=5",
		"SHOAL_LOG_FORMAT=json",
	)
	// NATS runs with the shipped users (deploy/nats): every service
	// connects with its role; the test reads results as the admin.
	for _, r := range e2eRoles {
		h.env = append(h.env, "SHOAL_NATS_"+strings.ToUpper(r)+"_PASSWORD="+e2ePassword(r))
	}
	cu, cg := containerUser()
	h.env = append(h.env, fmt.Sprintf("E2E_USER=%d:%d", cu, cg))
	t.Cleanup(h.teardown)
	t.Logf("work dir %s, compose project %s, NATS on 127.0.0.1:%d", h.work, h.project, h.natsPort)
	return h
}

// e2eRoles are the users of deploy/nats/accounts.conf.
var e2eRoles = []string{"admin", "producer", "worker", "enqueue", "results"}

// e2ePassword is a role's password in the test deployment.
func e2ePassword(role string) string { return "e2e-" + role + "-password" }

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (h *harness) teardown() {
	if h.nc != nil {
		h.nc.Close()
	}
	logs := filepath.Join(h.work, "compose.log")
	if out, err := h.composeOut(nil, "logs", "--no-color", "--timestamps"); err == nil {
		_ = os.WriteFile(logs, out, 0o644)
	}
	if h.t.Failed() {
		h.t.Logf("container logs: %s", logs)
	}
	if os.Getenv("E2E_KEEP") == "1" {
		h.t.Logf("E2E_KEEP=1: leaving compose project %s and %s", h.project, h.work)
		return
	}
	if out, err := h.composeOut(nil, "down", "-v", "--remove-orphans", "-t", "3"); err != nil {
		h.t.Logf("compose down: %v\n%s", err, out)
	}
}

// composeOut runs a compose command (the deployment's file plus the test
// override) and returns its combined output.
func (h *harness) composeOut(extraEnv []string, args ...string) ([]byte, error) {
	full := append(append([]string{}, h.compose[1:]...),
		"-f", filepath.Join(h.repo, "docker-compose.yml"),
		"-f", filepath.Join(h.repo, "deploy", "compose.test.yml"),
		"-p", h.project)
	full = append(full, args...)
	cmd := exec.Command(h.compose[0], full...)
	cmd.Dir = h.repo
	cmd.Env = append(append([]string{}, h.env...), extraEnv...)
	return cmd.CombinedOutput()
}

func (h *harness) composeRun(args ...string) string {
	h.t.Helper()
	out, err := h.composeOut(nil, args...)
	if err != nil {
		h.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// prepare writes the two migration sets and generates the pristine fleet.
func (h *harness) prepare() {
	t := h.t
	examples, err := filepath.Glob(filepath.Join(h.repo, "migrations", "*.sql"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("no example migrations in %s/migrations", h.repo)
	}
	sort.Strings(examples)
	var last int64
	for _, f := range examples {
		v, err := strconv.ParseInt(strings.SplitN(filepath.Base(f), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("example migration %s: %v", f, err)
		}
		last = max(last, v)
	}
	// Two e2e steps after the examples. e2e_log gets one row per applied
	// step and has no unique key: a step applied twice shows as two rows.
	stepA, stepB := last+1, last+2
	h.head = stepB
	for set, rows := range map[string]int{"fast": fastRows, "slow": slowRows} {
		dir := filepath.Join(h.work, "migrations-"+set)
		mustMkdir(t, dir)
		for _, f := range examples {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, filepath.Base(f)), string(data))
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("%04d_e2e_%s_step.sql", stepA, set)), fmt.Sprintf(`-- e2e: CPU-bound step (%d rows of a recursive CTE) so that drills hit workers mid-migration.
CREATE TABLE e2e_log (version INTEGER NOT NULL, work INTEGER NOT NULL);
INSERT INTO e2e_log (version, work)
SELECT %d, sum(x %% 7) FROM (
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d)
  SELECT x FROM c
);
`, rows, stepA, rows))
		writeFile(t, filepath.Join(dir, fmt.Sprintf("%04d_e2e_mark.sql", stepB)),
			fmt.Sprintf("-- e2e: a second step in the same run, to check ordering and exactly-once.\nINSERT INTO e2e_log (version, work) VALUES (%d, 0);\n", stepB))
	}
	// The pristine fleet: the example schema at mixed versions (whatever
	// demo-fleet makes), generated with the embedded migrations.
	pristine := filepath.Join(h.work, "pristine")
	cmd := exec.Command(h.shoal, "--log-format", "console", "--log-level", "warn", "demo-fleet", "--root", pristine, "--tenants", strconv.Itoa(h.tenants))
	cmd.Dir = h.work // no ./migrations here: the embedded examples
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shoal demo-fleet: %v\n%s", err, out)
	}
	dbs, _ := filepath.Glob(filepath.Join(pristine, "*", "*.db"))
	if len(dbs) != h.tenants {
		t.Fatalf("demo-fleet made %d DBs matching */*.db, want %d", len(dbs), h.tenants)
	}
	t.Logf("fleet: %d tenants; migrations: %d examples + e2e steps %d, %d (head %d)", len(dbs), len(examples), stepA, stepB, h.head)
}

func mustMkdir(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// containerUser is who the containers run as: the image's user 65532 when
// the test runs as root (it then chowns the fleet to it), else the test's
// own uid, which owns the bind-mounted files already.
func containerUser() (uid, gid int) {
	if os.Getuid() == 0 {
		return 65532, 65532
	}
	return os.Getuid(), os.Getgid()
}

func chownR(t *testing.T, dir string) {
	uid, gid := containerUser()
	if os.Getuid() != 0 {
		return
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("chown %s: %v", dir, err)
	}
}

// up starts NATS and connects the test to it.
func (h *harness) up() {
	t := h.t
	for _, d := range []string{"tenants", "backups", "reports"} {
		mustMkdir(t, filepath.Join(h.work, d))
		chownR(t, filepath.Join(h.work, d))
	}
	h.env = append(h.env, "SHOAL_MIGRATIONS="+filepath.Join(h.work, "migrations-fast"))
	h.composeRun("up", "-d", "nats")
	deadline := time.Now().Add(60 * time.Second)
	for {
		nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", h.natsPort), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
			nats.UserInfo("shoal-admin", e2ePassword("admin")))
		if err == nil {
			js, err := jetstream.New(nc)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = js.AccountInfo(ctx)
				cancel()
			}
			if err == nil {
				h.nc, h.js = nc, js
				// The admin user creates the streams and consumers
				// (the workers' and producer's users may not).
				h.composeRun("run", "--rm", "-T", "nats-setup")
				return
			}
			nc.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS not ready on port %d: %v", h.natsPort, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// resetFleet removes the workers, restores the pristine fleet and selects
// a migration set for the next workers.
func (h *harness) resetFleet(t *testing.T, set string) {
	if out, err := h.composeOut(nil, "rm", "-s", "-f", "worker"); err != nil {
		t.Fatalf("compose rm worker: %v\n%s", err, out)
	}
	for _, d := range []string{"tenants", "backups"} {
		p := filepath.Join(h.work, d)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(h.work, "pristine"), filepath.Join(h.work, "tenants")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	mustMkdir(t, filepath.Join(h.work, "backups"))
	for _, d := range []string{"tenants", "backups", "reports"} {
		chownR(t, filepath.Join(h.work, d))
	}
	h.setEnv("SHOAL_MIGRATIONS", filepath.Join(h.work, "migrations-"+set))
}

func (h *harness) setEnv(k, v string) {
	for i, kv := range h.env {
		if strings.HasPrefix(kv, k+"=") {
			h.env[i] = k + "=" + v
			return
		}
	}
	h.env = append(h.env, k+"="+v)
}

// workers lists the running worker containers (short ids, = the worker's
// hostname in results).
func (h *harness) workers(t *testing.T) []string {
	out := docker(t, "ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+h.project,
		"--filter", "label=com.docker.compose.service=worker")
	var ids []string
	for _, id := range strings.Fields(out) {
		ids = append(ids, id[:12])
	}
	sort.Strings(ids)
	return ids
}

// scaleWorkers runs n workers and waits until each is healthy and its
// consumer is provisioned.
func (h *harness) scaleWorkers(t *testing.T, n int) {
	if out, err := h.composeOut(nil, "up", "-d", "--no-deps", "--no-recreate", "--scale", fmt.Sprintf("worker=%d", n), "worker"); err != nil {
		t.Fatalf("compose up --scale worker=%d: %v\n%s", n, err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids := h.workers(t)
		healthy := 0
		for _, id := range ids {
			if s, err := exec.Command("docker", "inspect", "-f", "{{.State.Health.Status}}", id).Output(); err == nil && strings.TrimSpace(string(s)) == "healthy" {
				healthy++
			}
		}
		if len(ids) == n && healthy == n {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := h.js.Consumer(ctx, "SHOAL_JOBS", "shoal_default")
			cancel()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d worker containers healthy after 60s", healthy, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// a run

type run struct {
	id      string
	cmd     *exec.Cmd
	out     bytes.Buffer
	started time.Time
	done    chan struct{}
	err     error
	wall    time.Duration
}

// produce starts `docker compose run producer produce --wait` (the
// post-deploy step) for a fresh run id.
func (h *harness) produce(t *testing.T, name string) *run {
	r := &run{id: fmt.Sprintf("e2e-%s-%d", name, time.Now().UnixNano()%1e6), done: make(chan struct{})}
	full := append(append([]string{}, h.compose[1:]...),
		"-f", filepath.Join(h.repo, "docker-compose.yml"),
		"-f", filepath.Join(h.repo, "deploy", "compose.test.yml"),
		"-p", h.project,
		"run", "--rm", "--no-deps", "-T", "producer",
		"produce", "--run-id", r.id, "--wait", "--timeout", "4m", "--report", "/data/reports/"+r.id+".json")
	r.cmd = exec.Command(h.compose[0], full...)
	r.cmd.Dir = h.repo
	r.cmd.Env = h.env
	r.cmd.Stdout = &r.out
	r.cmd.Stderr = &r.out
	r.started = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start producer: %v", err)
	}
	go func() {
		r.err = r.cmd.Wait()
		r.wall = time.Since(r.started)
		close(r.done)
	}()
	return r
}

func (r *run) wait(t *testing.T) {
	select {
	case <-r.done:
	case <-time.After(5 * time.Minute):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("run %s: producer still running after 5m\n%s", r.id, tail(r.out.String(), 40))
	}
	if r.err != nil {
		t.Errorf("run %s: `produce --wait` failed: %v\n%s", r.id, r.err, tail(r.out.String(), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// resultCount is how many results the run has stored so far.
func (h *harness) resultCount(id string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := h.js.Stream(ctx, "SHOAL_RESULTS")
	if err != nil {
		return 0
	}
	subj := "shoal.results." + id
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0
	}
	return int(info.State.Subjects[subj])
}

// waitResults blocks until the run has at least n results.
func (h *harness) waitResults(t *testing.T, r *run, n int) {
	deadline := time.Now().Add(3 * time.Minute)
	for h.resultCount(r.id) < n {
		select {
		case <-r.done:
			t.Fatalf("run %s ended before %d results:\n%s", r.id, n, tail(r.out.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: fewer than %d results after 3m", r.id, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// results reads every result message of a run (all attempts, duplicates
// included) from the results stream.
func (h *harness) results(t *testing.T, id string) []result {
	want := h.resultCount(id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := h.js.Stream(ctx, "SHOAL_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"shoal.results." + id}})
	if err != nil {
		t.Fatal(err)
	}
	var out []result
	for len(out) < want {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var r result
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				t.Fatalf("result message %q: %v", m.Data(), err)
			}
			out = append(out, r)
		}
		if got == 0 {
			t.Fatalf("read %d of %d results of %s", len(out), want, id)
		}
	}
	return out
}

func (h *harness) readReport(t *testing.T, id string) report {
	var rep report
	data, err := os.ReadFile(filepath.Join(h.work, "reports", id+".json"))
	if err != nil {
		t.Fatalf("report of %s: %v", id, err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report of %s: %v", id, err)
	}
	return rep
}

// verify checks the run's report, every result message and every DB file,
// and returns the drill's figure.
func (h *harness) verify(t *testing.T, r *run, name, workers, set, note string) figure {
	time.Sleep(2 * time.Second) // late results of a worker that was cut off
	f := figure{Name: name, Workers: workers, Tenants: h.tenants, WallSeconds: r.wall.Seconds(), Note: note}

	rep := h.readReport(t, r.id)
	if got := len(rep.Databases); got != h.tenants {
		t.Errorf("report: %d databases, want %d", got, h.tenants)
	}
	if rep.Summary["total"] != int64(h.tenants) || rep.Summary["pending"] != 0 {
		t.Errorf("report summary %v: want total %d, pending 0", rep.Summary, h.tenants)
	}
	seen := map[string]bool{}
	for _, d := range rep.Databases {
		if seen[d.Tenant] {
			t.Errorf("report: tenant %s listed twice", d.Tenant)
		}
		seen[d.Tenant] = true
		if d.Outcome != "migrated" && d.Outcome != "current" {
			t.Errorf("report: %s outcome %s: %v", d.Tenant, d.Outcome, deref(d.Error))
		}
		if d.To == nil || *d.To != h.head {
			t.Errorf("report: %s ends at %v, want %d", d.Tenant, d.To, h.head)
		}
	}

	// `shoal results --json` (the contract's reader) agrees with the report
	rcmd := exec.Command(h.shoal, "results", "--run-id", r.id, "--json",
		"--nats", fmt.Sprintf("nats://127.0.0.1:%d", h.natsPort))
	rcmd.Env = append(os.Environ(), "SHOAL_NATS_USER=shoal-results", "SHOAL_NATS_PASSWORD="+e2ePassword("results"))
	out, err := rcmd.Output()
	var viaCLI report
	if err != nil {
		t.Errorf("shoal results --run-id %s --json: %v\n%s", r.id, err, out)
	} else if err := json.Unmarshal(out, &viaCLI); err != nil {
		t.Errorf("shoal results --json: %v: %s", err, out)
	} else if len(viaCLI.Databases) != h.tenants || viaCLI.Summary["total"] != int64(h.tenants) ||
		viaCLI.Summary["migrated"]+viaCLI.Summary["current"] != int64(h.tenants) {
		t.Errorf("shoal results --json: %d databases, summary %v; want %d at head", len(viaCLI.Databases), viaCLI.Summary, h.tenants)
	}

	// every result message, every attempt
	all := h.results(t, r.id)
	f.Results = len(all)
	byTenant := map[string][]result{}
	first, last := time.Time{}, time.Time{}
	for _, res := range all {
		byTenant[res.Tenant] = append(byTenant[res.Tenant], res)
		start := res.At.Add(-time.Duration(res.DurationMs) * time.Millisecond)
		if first.IsZero() || start.Before(first) {
			first = start
		}
		if res.At.After(last) {
			last = res.At
		}
	}
	if len(byTenant) != h.tenants {
		t.Errorf("results for %d tenants, want %d", len(byTenant), h.tenants)
	}
	for tenant, rs := range byTenant {
		maxAttempt := 0
		applied := map[int64]int{}
		for _, res := range rs {
			maxAttempt = max(maxAttempt, res.Attempt)
			for _, a := range res.Applied {
				applied[a.Version]++
			}
		}
		if maxAttempt > 1 {
			f.Redelivered++
		}
		if maxAttempt > 1 || len(rs) > 1 {
			f.Affected++
		}
		for v, n := range applied {
			if n > 1 {
				t.Errorf("tenant %s: results report version %d applied %d times", tenant, v, n)
				f.AppliedTwice += n - 1
			}
		}
	}
	if span := last.Sub(first); span > 0 {
		f.TenantsPerS = float64(h.tenants) / span.Seconds()
	}

	// the files themselves
	twice, notHead := h.checkDBs(t)
	f.AppliedTwice += twice
	f.NotAtHead = notHead
	h.checkFleetStatus(t, set)
	if f.AppliedTwice != 0 {
		t.Errorf("%s: %d migrations applied twice", name, f.AppliedTwice)
	}
	if f.NotAtHead != 0 {
		t.Errorf("%s: %d tenants not at head", name, f.NotAtHead)
	}
	h.mu.Lock()
	h.figures = append(h.figures, f)
	h.mu.Unlock()
	t.Logf("%s: %+v", name, f)
	return f
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkDBs opens every tenant DB: quick_check ok, history at head with one
// row per version, e2e_log with one row per e2e step.
func (h *harness) checkDBs(t *testing.T) (appliedTwice, notAtHead int) {
	dbs, _ := filepath.Glob(filepath.Join(h.work, "tenants", "*", "*.db"))
	if len(dbs) != h.tenants {
		t.Errorf("%d DB files, want %d", len(dbs), h.tenants)
	}
	for _, p := range dbs {
		twice, head, err := checkDB(p, h.head)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		appliedTwice += twice
		if !head {
			notAtHead++
		}
	}
	return appliedTwice, notAtHead
}

func checkDB(path string, head int64) (twice int, atHead bool, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, false, err
	}
	defer db.Close()
	var qc string
	if err := db.QueryRow("PRAGMA quick_check").Scan(&qc); err != nil || qc != "ok" {
		return 0, false, fmt.Errorf("quick_check: %q %v", qc, err)
	}
	var version int64
	if err := db.QueryRow("SELECT coalesce(max(version), 0) FROM shoal_migrations").Scan(&version); err != nil {
		return 0, false, fmt.Errorf("history: %v", err)
	}
	var dupHistory int
	if err := db.QueryRow("SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM shoal_migrations GROUP BY version HAVING n > 1)").Scan(&dupHistory); err != nil {
		return 0, false, err
	}
	var steps, dupSteps int
	if err := db.QueryRow("SELECT count(DISTINCT version), count(*) - count(DISTINCT version) FROM e2e_log").Scan(&steps, &dupSteps); err != nil {
		return dupHistory, false, fmt.Errorf("e2e_log: %v", err)
	}
	if steps != 2 {
		err = fmt.Errorf("e2e_log has %d distinct steps, want 2", steps)
	}
	if dupHistory+dupSteps > 0 {
		err = errors.Join(err, fmt.Errorf("applied twice: %d history rows, %d e2e_log rows", dupHistory, dupSteps))
	}
	return dupHistory + dupSteps, version == head, err
}

// checkFleetStatus runs `shoal fleet status --json` on the host.
func (h *harness) checkFleetStatus(t *testing.T, set string) {
	cmd := exec.Command(h.shoal, "fleet", "status", "--root", filepath.Join(h.work, "tenants"),
		"--dir", filepath.Join(h.work, "migrations-"+set), "--json")
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("shoal fleet status: %v\n%s", err, out)
		return
	}
	var st struct {
		Head      int64             `json:"head"`
		Versions  map[string]int    `json:"versions"`
		Behind    []json.RawMessage `json:"behind"`
		Ahead     []json.RawMessage `json:"ahead"`
		Unmanaged []json.RawMessage `json:"unmanaged"`
		Corrupt   []json.RawMessage `json:"corrupt"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Errorf("fleet status --json: %v: %s", err, out)
		return
	}
	if st.Head != h.head || st.Versions[strconv.FormatInt(h.head, 10)] != h.tenants ||
		len(st.Behind)+len(st.Ahead)+len(st.Unmanaged)+len(st.Corrupt) != 0 {
		t.Errorf("fleet status: %s", out)
	}
}

// ---------------------------------------------------------------------------
// scenarios

// throughput: the same fleet with 1 then 3 worker containers (fast set),
// twice each, alternating, since a few seconds' run on a small machine is noisy.
func (h *harness) throughput(t *testing.T) {
	for i, n := range []int{1, 3, 1, 3} {
		h.resetFleet(t, "fast")
		h.scaleWorkers(t, n)
		r := h.produce(t, fmt.Sprintf("tput%d", n))
		r.wait(t)
		f := h.verify(t, r, fmt.Sprintf("throughput, %d worker(s), #%d", n, i/2+1), strconv.Itoa(n), "fast", "example migrations + 2 light steps")
		if f.Redelivered != 0 || f.Results != h.tenants {
			t.Errorf("a clean run: %d results (want one per tenant, %d), %d redelivered", f.Results, h.tenants, f.Redelivered)
		}
	}
}

// inFlight reads shoal_worker_jobs_in_flight from a worker's /metrics
// (--listen :8080), reached at the container's address on the network.
func inFlight(id string) (int, error) {
	out, err := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id).Output()
	if err != nil {
		return 0, err
	}
	ips := strings.Fields(string(out))
	if len(ips) == 0 {
		return 0, fmt.Errorf("container %s has no address", id)
	}
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(ips[0], "8080") + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "shoal_worker_jobs_in_flight "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("no shoal_worker_jobs_in_flight in /metrics")
}

// busyWorker picks a worker with jobs in flight (so that the drill hits a
// migration), or the first one if none shows any within a few seconds.
func (h *harness) busyWorker(t *testing.T) (id string, jobs int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, w := range h.workers(t) {
			n, err := inFlight(w)
			if err != nil {
				t.Logf("metrics of %s: %v", w, err)
				continue
			}
			if n > 0 {
				return w, n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return h.workers(t)[0], 0
}

// effectiveAckWait is the jobs consumer's ack wait as the server has it.
func (h *harness) effectiveAckWait(t *testing.T) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.js.Consumer(ctx, "SHOAL_JOBS", "shoal_default")
	if err != nil {
		t.Fatalf("consumer shoal_default: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("consumer shoal_default: %v", err)
	}
	if info.Config.AckWait != ackWait {
		t.Logf("note: the consumer's ack wait is %v, not the workers' --ack-wait %v (the last process to provision it wins)", info.Config.AckWait, ackWait)
	}
	return info.Config.AckWait
}

// stragglers: after a full run, put a few tenants back to old versions
// (as a restore from an old backup would) and run the compose file's
// `stragglers` service unchanged (profile cron, `produce --only-behind
// --wait`): exactly those tenants get jobs, and the service exits 0.
func (h *harness) stragglers(t *testing.T) {
	if len(h.workers(t)) == 0 {
		h.resetFleet(t, "fast")
		h.scaleWorkers(t, 3)
		r := h.produce(t, "pre-stragglers")
		r.wait(t)
	}
	behind := []string{}
	for i := 1; i <= h.tenants && len(behind) < 10; i += max(1, h.tenants/10) {
		behind = append(behind, fmt.Sprintf("tenant-%04d", i))
	}
	for _, tenant := range behind {
		src := filepath.Join(h.work, "pristine", tenant, "app.db")
		dst := filepath.Join(h.work, "tenants", tenant, "app.db")
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		chownR(t, dst)
	}
	id := fmt.Sprintf("e2e-stragglers-%d", time.Now().UnixNano()%1e6)
	start := time.Now()
	out, err := h.composeOut(nil, "run", "--rm", "--no-deps", "-T", "-e", "SHOAL_RUN_ID="+id, "stragglers")
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("compose run stragglers: %v\n%s", err, tail(string(out), 30))
	}
	all := h.results(t, id)
	got := map[string]string{}
	for _, r := range all {
		got[strings.TrimSuffix(r.Tenant, "/app.db")] = r.Outcome
	}
	for _, tenant := range behind {
		if got[tenant] != "migrated" {
			t.Errorf("straggler %s: outcome %q, want migrated", tenant, got[tenant])
		}
	}
	if len(all) != len(behind) {
		t.Errorf("stragglers run published %d jobs, want %d (only the DBs behind head)", len(all), len(behind))
	}
	twice, notHead := h.checkDBs(t)
	h.checkFleetStatus(t, "fast")
	f := figure{Name: "stragglers (--only-behind)", Workers: strconv.Itoa(len(h.workers(t))), Tenants: h.tenants,
		WallSeconds: wall.Seconds(), Results: len(all), Affected: len(behind), AppliedTwice: twice, NotAtHead: notHead,
		Note: fmt.Sprintf("%d tenants put back to old versions; compose service `stragglers` as shipped", len(behind))}
	if twice != 0 || notHead != 0 {
		t.Errorf("stragglers: %d applied twice, %d not at head", twice, notHead)
	}
	h.mu.Lock()
	h.figures = append(h.figures, f)
	h.mu.Unlock()
}

// kill one worker container (SIGKILL, not restarted) mid-run.
func (h *harness) drillKillWorker(t *testing.T) {
	h.resetFleet(t, "slow")
	h.scaleWorkers(t, 3)
	r := h.produce(t, "kill")
	h.waitResults(t, r, h.tenants/5)
	victim, jobs := h.busyWorker(t)
	docker(t, "kill", "-s", "KILL", victim)
	aw := h.effectiveAckWait(t)
	t.Logf("killed worker %s (%d jobs in flight) after %d results; ack wait %v", victim, jobs, h.resultCount(r.id), aw)
	r.wait(t)
	h.verify(t, r, "kill a worker mid-run", "3 -> 2", "slow",
		fmt.Sprintf("SIGKILL, %d jobs in flight, ack wait %v", jobs, aw))
}

// restart the NATS container mid-run.
func (h *harness) drillRestartNATS(t *testing.T) {
	h.resetFleet(t, "slow")
	h.scaleWorkers(t, 3)
	r := h.produce(t, "nats")
	h.waitResults(t, r, h.tenants/4)
	before := h.resultCount(r.id)
	start := time.Now()
	h.composeRun("restart", "-t", "5", "nats")
	t.Logf("restarted NATS after %d results in %v", before, time.Since(start).Round(time.Millisecond))
	r.wait(t)
	h.verify(t, r, "restart NATS mid-run", "3", "slow", fmt.Sprintf("restart after %d results", before))
}

// cut one worker off the network for longer than the ack wait.
func (h *harness) drillPartition(t *testing.T) {
	h.resetFleet(t, "slow")
	h.scaleWorkers(t, 3)
	network := h.project + "_shoal"
	r := h.produce(t, "partition")
	h.waitResults(t, r, h.tenants/5)
	victim, jobs := h.busyWorker(t)
	docker(t, "network", "disconnect", "-f", network, victim)
	aw := h.effectiveAckWait(t)
	cut := aw + 5*time.Second
	t.Logf("disconnected worker %s (%d jobs in flight) for %v (ack wait %v) after %d results", victim, jobs, cut, aw, h.resultCount(r.id))
	time.Sleep(cut)
	docker(t, "network", "connect", network, victim)
	r.wait(t)
	h.verify(t, r, "partition a worker > ack wait", "3", "slow",
		fmt.Sprintf("cut off %v, %d jobs in flight, ack wait %v", cut.Round(time.Second), jobs, aw))
}

// scale 1 -> 3 during a run; rates before and after.
func (h *harness) drillScale(t *testing.T) {
	h.resetFleet(t, "slow")
	h.scaleWorkers(t, 1)
	r := h.produce(t, "scale")
	h.waitResults(t, r, h.tenants/5)
	scaleAt := time.Now().UTC()
	h.scaleWorkers(t, 3)
	readyAt := time.Now().UTC()
	r.wait(t)
	all := h.results(t, r.id)
	var first, last time.Time
	var n1, n3 int
	for _, res := range all {
		start := res.At.Add(-time.Duration(res.DurationMs) * time.Millisecond)
		if first.IsZero() || start.Before(first) {
			first = start
		}
		if res.At.After(last) {
			last = res.At
		}
		if res.At.Before(scaleAt) {
			n1++
		}
		if !res.At.Before(readyAt) {
			n3++
		}
	}
	rate1 := float64(n1) / scaleAt.Sub(first).Seconds()
	rate3 := float64(n3) / last.Sub(readyAt).Seconds()
	note := fmt.Sprintf("1 worker: %d DBs at %.1f/s; 3 workers (from ready, %v after scaling): %d DBs at %.1f/s",
		n1, rate1, readyAt.Sub(scaleAt).Round(100*time.Millisecond), n3, rate3)
	h.verify(t, r, "scale 1 -> 3 mid-run", "1 -> 3", "slow", note)
}

func (h *harness) printFigures() {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-32s %-7s %7s %7s %9s %8s %8s %11s %12s %11s  %s\n", "scenario", "workers", "tenants", "wall_s", "tenants/s", "results", "affected", "redelivered", "applied_twice", "not_at_head", "note")
	for _, f := range h.figures {
		fmt.Fprintf(&b, "%-32s %-7s %7d %7.1f %9.1f %8d %8d %11d %12d %11d  %s\n", f.Name, f.Workers, f.Tenants, f.WallSeconds, f.TenantsPerS, f.Results, f.Affected, f.Redelivered, f.AppliedTwice, f.NotAtHead, f.Note)
	}
	h.t.Log(b.String())
	data, _ := json.MarshalIndent(h.figures, "", "  ")
	_ = os.WriteFile(filepath.Join(h.work, "figures.json"), data, 0o644)
	if out := os.Getenv("E2E_FIGURES"); out != "" {
		_ = os.WriteFile(out, []byte(b.String()), 0o644)
	}
}
