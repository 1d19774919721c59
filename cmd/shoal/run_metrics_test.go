package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
)

// TestRunMetrics: --listen's /metrics gives the followed run's progress
// from its tracker at each scrape, with the Go and process collectors.
func TestRunMetrics(t *testing.T) {
	p := &runProgress{}
	srv := httptest.NewServer(runMetricsHandler("r1", p))
	defer srv.Close()
	scrape := func() string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	has := func(body string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(body, l+"\n") {
				t.Fatalf("no %q in /metrics:\n%s", l, body)
			}
		}
	}
	// Before the run has a tracker: nothing done, total unknown.
	has(scrape(), `shoal_run_tenants_total{run_id="r1"} -1`, `shoal_run_tenants_done{run_id="r1"} 0`, `shoal_run_progress_ratio{run_id="r1"} 0`)
	tr := fleet.NewTracker("r1", time.Now().Add(-time.Second))
	p.set(tr)
	tr.SetTotal(4)
	tr.Add(fleet.Result{RunID: "r1", Tenant: "a", Outcome: engine.OutcomeMigrated, At: time.Now()})
	tr.Add(fleet.Result{RunID: "r1", Tenant: "b", Outcome: engine.OutcomeFailed, At: time.Now()})
	body := scrape()
	has(body, `shoal_run_tenants_total{run_id="r1"} 4`, `shoal_run_tenants_done{run_id="r1"} 2`,
		`shoal_run_tenants_failed{run_id="r1"} 1`, `shoal_run_progress_ratio{run_id="r1"} 0.5`)
	for _, m := range []string{"shoal_run_tenants_per_second", "shoal_run_eta_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, m) {
			t.Fatalf("no %s in /metrics", m)
		}
	}
}

// TestListenFlagCLI: --listen only where a run is followed (usage error
// otherwise), and an address that cannot be bound fails before anything
// runs.
func TestListenFlagCLI(t *testing.T) {
	d := t.TempDir()
	if o := shoal(t, d, nil, "results", "--run-id", "r1", "--listen", "127.0.0.1:0"); o.code != 2 || !strings.Contains(o.stderr, "--listen needs --follow") {
		t.Fatalf("results without --follow: %+v", o)
	}
	if o := shoal(t, d, nil, "produce", "--root", d, "--listen", "127.0.0.1:0"); o.code != 2 || !strings.Contains(o.stderr, "--listen needs --wait") {
		t.Fatalf("produce without --wait: %+v", o)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	root := filepath.Join(d, "fleet")
	if o := shoal(t, d, nil, "demo-fleet", "--root", root, "--tenants", "2"); o.code != 0 {
		t.Fatal(o)
	}
	o := shoal(t, d, nil, "run", "--root", root, "--no-backup", "--listen", ln.Addr().String())
	if o.code != 1 || !strings.Contains(o.stderr, "--listen "+ln.Addr().String()) || strings.Contains(o.stdout+o.stderr, "migrated") {
		t.Fatalf("run with a port in use: %+v", o)
	}
}

// TestListenServesLiveRunCLI: `produce --wait --listen` serves the run's
// progress while it waits (no worker here: every job stays pending).
func TestListenServesLiveRunCLI(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	dir := t.TempDir()
	root := filepath.Join(dir, "tenants")
	if o := shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "3"); o.code != 0 {
		t.Fatal(o)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", fleettest.FreePort(t))
	cmd := exec.Command(shoalBin, "produce", "--root", root, "--run-id", "live", "--wait", "--timeout", "1m", "--listen", addr)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SHOAL_NATS="+srv.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var body string
	fleettest.Eventually(t, 30*time.Second, "the run's total on /metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, `shoal_run_tenants_total{run_id="live"} 3`+"\n")
	})
	if !strings.Contains(body, `shoal_run_tenants_done{run_id="live"} 0`+"\n") {
		t.Fatalf("/metrics:\n%s\nstderr: %s", body, stderr.String())
	}
}
