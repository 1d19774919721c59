// Package fleettest has helpers for the fleet tests: migrations, an engine,
// NATS servers (embedded, or the system's nats-server binary) and tenant
// DBs at given versions.
package fleettest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/embedded"
	_ "modernc.org/sqlite"
)

// Head is the head version of Migrations.
const Head = 3

// Migrations returns a small migrations directory (head 3).
func Migrations() fstest.MapFS {
	return fstest.MapFS{
		"0001_users.sql": {Data: []byte("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n")},
		"0002_notes.sql": {Data: []byte("CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);\n")},
		"0003_tags.sql":  {Data: []byte("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE);\n")},
	}
}

// Engine returns an engine over Migrations.
func Engine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Options{Dir: Migrations(), DirName: "test-migrations", BusyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Fleet creates n tenants root/t-NNN/app.db; version(i) gives each one's
// version (0: a fresh empty file, -1: no file at all).
func Fleet(t testing.TB, e *engine.Engine, root string, n int, version func(i int) int64) []string {
	t.Helper()
	var tenants []string
	for i := range n {
		tenant := fmt.Sprintf("t-%03d/app.db", i)
		path := filepath.Join(root, filepath.FromSlash(tenant))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		v := int64(0)
		if version != nil {
			v = version(i)
		}
		switch {
		case v < 0:
			continue
		case v == 0:
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := e.Migrate(context.Background(), path, engine.MigrateOptions{To: v}); err != nil {
				t.Fatal(err)
			}
		}
		tenants = append(tenants, tenant)
	}
	return tenants
}

// Breakable makes a DB at version 1 whose migration 2 fails (a user table
// named notes already exists): a `failed` outcome on every attempt.
func Breakable(t testing.TB, e *engine.Engine, path string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if _, err := e.Migrate(context.Background(), path, engine.MigrateOptions{To: 1}); err != nil {
		t.Fatal(err)
	}
	Exec(t, path, "CREATE TABLE notes (x)")
}

// Unmanaged makes a DB with a user table and no shoal history (a refusal).
func Unmanaged(t testing.TB, path string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	Exec(t, path, "CREATE TABLE legacy (x)")
}

// Exec runs SQL on a DB file.
func Exec(t testing.TB, path, query string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		t.Fatal(err)
	}
}

// History returns the versions recorded in a DB's history, in order.
func History(t testing.TB, path string) []int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT version FROM shoal_migrations ORDER BY rowid")
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		rows.Scan(&v)
		out = append(out, v)
	}
	return out
}

// Server is a NATS server for a test.
type Server struct {
	URL      string
	Embedded *embedded.Server // nil for an external binary
	Version  string
	stop     func()
}

// Stop stops the server.
func (s *Server) Stop() { s.stop() }

// StartEmbedded starts an in-process server on a random port with its
// store in a test temp dir (or storeDir, port when given: for restarts).
func StartEmbedded(t testing.TB, storeDir string, port int) *Server {
	t.Helper()
	if storeDir == "" {
		storeDir = t.TempDir()
	}
	srv, err := embedded.Start(embedded.Options{StoreDir: storeDir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: srv.ClientURL(), Embedded: srv, stop: srv.Shutdown}
	t.Cleanup(srv.Shutdown)
	return s
}

// SystemBinary returns the path of a nats-server binary on this machine
// (Debian's /usr/sbin/nats-server or one in PATH), or "".
func SystemBinary() string {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server"
	}
	return ""
}

// StartBinary runs the system's nats-server (with -js) as a separate
// process on a random port; the test is skipped when there is none.
func StartBinary(t testing.TB) *Server {
	t.Helper()
	bin := SystemBinary()
	if bin == "" {
		t.Skip("no nats-server binary (/usr/sbin/nats-server or in PATH): install Debian's nats-server to run this test against it")
	}
	port := FreePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(url)
		if err == nil {
			v := nc.ConnectedServerVersion()
			nc.Close()
			return &Server{URL: url, Version: v, stop: stop}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %v", bin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a TCP port free right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Connect connects to the server and checks it like the commands do.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := fleet.Connect(context.Background(), url, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// Eventually polls cond every 10ms until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Results reads every result stored for a run.
func Results(t testing.TB, js jetstream.JetStream, runID string) *fleet.Tracker {
	t.Helper()
	tr := fleet.NewTracker(runID, time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fleet.Follow(ctx, js, fleet.DefaultNames(), runID, tr, fleet.FollowOptions{}); err != nil {
		t.Fatal(err)
	}
	return tr
}

// All reads every result message stored for a run (not merged by tenant).
func All(t testing.TB, js jetstream.JetStream, runID string) []fleet.Result {
	t.Helper()
	var out []fleet.Result
	tr := fleet.NewTracker(runID, time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := fleet.Follow(ctx, js, fleet.DefaultNames(), runID, tr, fleet.FollowOptions{OnResult: func(r fleet.Result) { out = append(out, r) }})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// JobsLeft is the number of messages in the jobs stream.
func JobsLeft(t testing.TB, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), fleet.DefaultJobsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
