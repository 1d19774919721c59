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
	tr, err := TryResults(js, runID)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TryResults is Results returning the error (e.g. while a server restarts).
func TryResults(js jetstream.JetStream, runID string) (*fleet.Tracker, error) {
	tr := fleet.NewTracker(runID, time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := fleet.Follow(ctx, js, fleet.DefaultNames(), runID, tr, fleet.FollowOptions{})
	return tr, err
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
	n, err := TryJobsLeft(js)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TryJobsLeft is JobsLeft returning the error (e.g. while a server restarts).
func TryJobsLeft(js jetstream.JetStream) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, fleet.DefaultJobsStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// helperEnv makes a test binary run an embedded NATS server instead of its
// tests (see ServeIfHelper, StartKillable): "STORE_DIR PORT".
const helperEnv = "SHOAL_FLEETTEST_NATSD"

// ServeIfHelper runs an embedded NATS server and never returns when the
// test binary was started by StartKillable; call it first in TestMain.
func ServeIfHelper() {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	var dir string
	var port int
	if _, err := fmt.Sscanf(spec, "%s %d", &dir, &port); err != nil {
		fmt.Fprintln(os.Stderr, "bad", helperEnv, spec, err)
		os.Exit(2)
	}
	if _, err := embedded.Start(embedded.Options{StoreDir: dir, Port: port}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	select {}
}

// Killable is an embedded NATS server in a child process (the test binary
// itself, see ServeIfHelper), so that it can be killed with SIGKILL like a
// crashed server: nothing is flushed.
type Killable struct {
	URL   string
	bin   string // a nats-server binary, or "" for the test binary
	dir   string
	port  int
	cmd   *exec.Cmd
	t     testing.TB
	alive bool
}

// StartKillable starts a killable server on storeDir and a free port. The
// calling package's TestMain must call ServeIfHelper.
func StartKillable(t testing.TB, storeDir string) *Killable {
	t.Helper()
	k := &Killable{dir: storeDir, port: FreePort(t), t: t}
	k.URL = fmt.Sprintf("nats://127.0.0.1:%d", k.port)
	k.Restart()
	t.Cleanup(k.Kill)
	return k
}

// StartKillableBinary is StartKillable with the system's nats-server
// binary (SystemBinary); the test is skipped when there is none.
func StartKillableBinary(t testing.TB, storeDir string) *Killable {
	t.Helper()
	bin := SystemBinary()
	if bin == "" {
		t.Skip("no nats-server binary (/usr/sbin/nats-server or in PATH): install Debian's nats-server to run this test against it")
	}
	k := &Killable{bin: bin, dir: storeDir, port: FreePort(t), t: t}
	k.URL = fmt.Sprintf("nats://127.0.0.1:%d", k.port)
	k.Restart()
	t.Cleanup(k.Kill)
	return k
}

// Kill sends SIGKILL and waits for the process.
func (k *Killable) Kill() {
	if k.alive {
		k.alive = false
		k.cmd.Process.Kill()
		k.cmd.Wait()
	}
}

// Restart starts the server again on the same store and port.
func (k *Killable) Restart() {
	k.t.Helper()
	k.Kill()
	if k.bin != "" {
		k.cmd = exec.Command(k.bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(k.port), "-sd", k.dir)
	} else {
		k.cmd = exec.Command(os.Args[0], "-test.run=^$")
		k.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", helperEnv, k.dir, k.port))
	}
	if err := k.cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.alive = true
	Eventually(k.t, 20*time.Second, "the killable NATS server", func() bool {
		nc, err := nats.Connect(k.URL)
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	})
}
