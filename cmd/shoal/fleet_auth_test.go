package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/fleet/fleettest"
)

// roleEnv is the environment of a shoal command run as a shipped role.
func roleEnv(url, role, password string) []string {
	return []string{"SHOAL_NATS=" + url, "SHOAL_NATS_USER=" + fleettest.RoleUser(role), "SHOAL_NATS_PASSWORD=" + password}
}

// noSecret fails when any role's password shows in out.
func noSecret(t *testing.T, what string, out ...string) {
	t.Helper()
	for _, o := range out {
		for _, r := range fleettest.Roles {
			if strings.Contains(o, fleettest.RolePassword(r)) || strings.Contains(o, "s3cr3t") {
				t.Fatalf("%s shows a password:\n%s", what, o)
			}
		}
	}
}

// The fleet works with the least-privilege users of deploy/nats (on the Go
// server module and on the system's nats-server): admin sets up, a worker,
// a producer, enqueue and results each with their own user. A worker with a
// wrong password exits 1 at start with one line; the server refuses a job
// published with the worker's user and stream creation by the producer's,
// and shoal says so (exit 1). No password is ever printed or logged.
func TestFleetAuthRolesCLI(t *testing.T) {
	t.Parallel()
	for _, binary := range []bool{false, true} {
		name := "module"
		if binary {
			name = "binary"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := fleettest.StartConfig(t, binary)
			dir := t.TempDir()
			root := filepath.Join(dir, "tenants")
			shoal(t, dir, nil, "demo-fleet", "--root", root, "--tenants", "8")
			pw := fleettest.RolePassword
			env := func(role string) []string { return roleEnv(srv.URL, role, pw(role)) }

			// Before setup: the producer may not create the streams.
			o := shoal(t, dir, env("producer"), "--log-level", "debug", "produce", "--root", root, "--run-id", "early")
			if o.code != 1 || !strings.Contains(o.stderr, "shoal: NATS denied this user permission to publish to \"$JS.API.STREAM.CREATE.SHOAL_JOBS\"") ||
				!strings.Contains(o.stderr, "shoal nats setup") {
				t.Fatalf("produce before setup: %+v", o)
			}
			noSecret(t, "produce before setup", o.stdout, o.stderr)
			o = shoal(t, dir, env("producer"), "nats", "setup")
			if o.code != 1 || !strings.Contains(o.stderr, "permission") {
				t.Fatalf("nats setup as the producer: %+v", o)
			}
			// Flags work as well as the environment.
			o = shoal(t, dir, nil, "nats", "setup", "--nats", srv.URL, "--nats-user", fleettest.RoleUser("admin"), "--nats-password", pw("admin"), "--node", "default")
			if o.code != 0 || !strings.Contains(o.stdout, "1 replicas") {
				t.Fatalf("nats setup as admin: %+v", o)
			}
			noSecret(t, "nats setup", o.stdout, o.stderr)

			// A worker with a wrong password: one clear line, exit 1, no retry loop.
			o = shoal(t, dir, roleEnv(srv.URL, "worker", "wrong-s3cr3t"), "work", "--root", root)
			if o.code != 1 || !strings.HasPrefix(o.stderr, "shoal: NATS at "+srv.URL+" refused shoal's credentials") {
				t.Fatalf("worker with a wrong password: %+v", o)
			}
			noSecret(t, "wrong password", o.stdout, o.stderr)
			// The password in the URL is redacted.
			badURL := strings.Replace(srv.URL, "nats://", "nats://shoal-worker:wrong-s3cr3t@", 1)
			o = shoal(t, dir, []string{"SHOAL_NATS=" + badURL}, "work", "--root", root)
			if o.code != 1 || !strings.Contains(o.stderr, "shoal-worker:REDACTED@") {
				t.Fatalf("wrong password in the URL: %+v", o)
			}
			noSecret(t, "wrong password in the URL", o.stdout, o.stderr)

			work := exec.Command(shoalBin, "--log-level", "debug", "work", "--root", root, "--concurrency", "2", "--name", "role-worker")
			work.Dir = dir
			work.Env = append(work.Environ(), env("worker")...)
			var werr bytes.Buffer
			work.Stderr = &werr
			if err := work.Start(); err != nil {
				t.Fatal(err)
			}
			defer work.Process.Kill()

			o = shoal(t, dir, env("producer"), "produce", "--root", root, "--run-id", "roles-1", "--wait", "--timeout", "60s")
			if o.code != 0 || !strings.Contains(o.stderr, "8 jobs (8 new") {
				t.Fatalf("produce --wait as the producer: %+v\nworker:\n%s", o, werr.String())
			}
			o = shoal(t, dir, env("results"), "results", "--run-id", "roles-1", "--json")
			if o.code != 0 || strings.Count(o.stdout, `"outcome": "migrated"`) != 8 {
				t.Fatalf("results as the results reader: %+v", o)
			}
			db := filepath.Join(root, "tenant-0002", "app.db")
			o = shoal(t, dir, env("enqueue"), "enqueue", "--root", root, "--db", db, "--wait", "--json", "--timeout", "30s")
			if o.code != 0 || !strings.Contains(o.stdout, `"outcome": "current"`) {
				t.Fatalf("enqueue as the enqueue role: %+v", o)
			}
			// The worker's user may not publish a job.
			o = shoal(t, dir, env("worker"), "enqueue", "--root", root, "--db", db)
			if o.code != 1 || !strings.HasPrefix(o.stderr, `shoal: NATS denied this user permission to publish to "shoal.jobs.default.high"`) {
				t.Fatalf("enqueue with the worker's user: %+v", o)
			}
			// The results reader may not produce.
			o = shoal(t, dir, env("results"), "produce", "--root", root, "--run-id", "roles-2")
			if o.code != 1 || !strings.Contains(o.stderr, "NATS denied this user permission") {
				t.Fatalf("produce with the results reader's user: %+v", o)
			}
			work.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- work.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("worker: %v\n%s", err, werr.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("worker did not stop:\n%s", werr.String())
			}
			if strings.Contains(werr.String(), "ermission") {
				t.Fatalf("the worker met a permission error:\n%s", werr.String())
			}
			noSecret(t, "worker logs", werr.String())
			fmt.Fprintln(&werr) // keep the buffer referenced for -v debugging
		})
	}
}
