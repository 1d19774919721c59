package fleettest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Roles are the users of deploy/nats/accounts.conf.
var Roles = []string{"admin", "producer", "worker", "enqueue", "results"}

// RolePasswords are the test passwords of the shipped users, as the
// SHOAL_NATS_<ROLE>_PASSWORD environment the config reads.
func RolePasswords() map[string]string {
	m := map[string]string{}
	for _, r := range Roles {
		m["SHOAL_NATS_"+strings.ToUpper(r)+"_PASSWORD"] = "pw-" + r + "-s3cr3t"
	}
	return m
}

// RoleUser is the user name of a role in the shipped config.
func RoleUser(role string) string { return "shoal-" + role }

// RolePassword is the test password of a role.
func RolePassword(role string) string { return "pw-" + role + "-s3cr3t" }

// DeployDir is the repository's deploy/nats directory.
func DeployDir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nats")
	if _, err := os.Stat(filepath.Join(dir, "accounts.conf")); err != nil {
		t.Fatalf("deploy/nats/accounts.conf: %v", err)
	}
	return dir
}

// StartConfig starts a NATS server with the shipped single-server config
// (deploy/nats/nats.conf and accounts.conf) and the test passwords, on a
// random port with its store in a temp dir: in process (the nats-server Go
// module of go.mod) or, with binary, the system's nats-server (the test is
// skipped when there is none).
func StartConfig(t testing.TB, binary bool) *Server {
	t.Helper()
	src := DeployDir(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	store := filepath.Join(dir, "store")
	for _, f := range []string{"nats.conf", "accounts.conf"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		data = []byte(strings.ReplaceAll(string(data), `store_dir: "/data"`, "store_dir: "+strconv.Quote(store)))
		if !binary {
			// The Go module reads the same file; the environment is
			// per process, so put the passwords in the copy.
			for k, v := range RolePasswords() {
				data = []byte(strings.ReplaceAll(string(data), "$"+k, strconv.Quote(v)))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !binary {
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("deploy/nats/nats.conf: %v", err)
		}
		opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT, 0
		opts.StoreDir, opts.NoSigs, opts.NoLog = store, true, true
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(15 * time.Second) {
			ns.Shutdown()
			t.Fatal("NATS server with deploy/nats/nats.conf did not start")
		}
		t.Cleanup(ns.Shutdown)
		return &Server{URL: ns.ClientURL(), Version: server.VERSION, stop: ns.Shutdown}
	}
	bin := SystemBinary()
	if bin == "" {
		t.Skip("no nats-server binary (/usr/sbin/nats-server or in PATH): install Debian's nats-server to run this test against it")
	}
	port := FreePort(t)
	env := os.Environ()
	for k, v := range RolePasswords() {
		env = append(env, k+"="+v)
	}
	p := &proc{bin: bin, args: []string{"-c", conf, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-m", strconv.Itoa(FreePort(t))}, env: env}
	p.start(t)
	t.Cleanup(p.kill)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	v := waitUp(t, url, nats.UserInfo(RoleUser("admin"), RolePassword("admin")))
	return &Server{URL: url, Version: v, stop: p.kill}
}

// proc is a nats-server process.
type proc struct {
	bin  string
	args []string
	env  []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *os.File
}

func (p *proc) start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.SysProcAttr = procAttr()
	if p.log != nil {
		cmd.Stdout, cmd.Stderr = p.log, p.log
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

func waitUp(t testing.TB, url string, opts ...nats.Option) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			v := nc.ConnectedServerVersion()
			nc.Close()
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server at %s did not start: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cluster is a JetStream cluster of system nats-server processes on
// loopback ports, with the shipped users (deploy/nats/accounts.conf).
type Cluster struct {
	Nodes []*Node
}

// Node is one server of a Cluster: a process, or a server in this process.
type Node struct {
	Name string
	URL  string
	p    *proc
	conf string // in-process: the config file
	mu   sync.Mutex
	ns   *server.Server
}

// URLs is every node's client URL, comma-separated.
func (c *Cluster) URLs() string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.URL)
	}
	return strings.Join(u, ",")
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Kill sends the node SIGKILL (an in-process node: shuts it down).
func (n *Node) Kill() {
	if n.p != nil {
		n.p.kill()
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
		n.ns = nil
	}
}

// Restart starts a killed node again with its store.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	if n.p != nil {
		n.p.start(t)
	} else {
		n.startInProcess(t)
	}
	waitUp(t, n.URL, nats.UserInfo(RoleUser("admin"), RolePassword("admin")))
}

func (n *Node) startInProcess(t testing.TB) {
	t.Helper()
	opts, err := server.ProcessConfigFile(n.conf)
	if err != nil {
		t.Fatalf("%s: %v", n.conf, err)
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	n.mu.Lock()
	n.ns = ns
	n.mu.Unlock()
}

// StartCluster starts size system nats-server processes as one JetStream
// cluster (skipped without a nats-server binary) or, with inProcess, size
// servers of the Go module in this process, and waits until its JetStream
// meta group has a leader.
func StartCluster(t testing.TB, size int, inProcess bool) *Cluster {
	t.Helper()
	bin := SystemBinary()
	if bin == "" && !inProcess {
		t.Skip("no nats-server binary (/usr/sbin/nats-server or in PATH): apt-get install nats-server to run the cluster tests")
	}
	src := DeployDir(t)
	dir := t.TempDir()
	accounts, err := os.ReadFile(filepath.Join(src, "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if inProcess {
		for k, v := range RolePasswords() {
			accounts = []byte(strings.ReplaceAll(string(accounts), "$"+k, strconv.Quote(v)))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), accounts, 0o600); err != nil {
		t.Fatal(err)
	}
	env := os.Environ()
	for k, v := range RolePasswords() {
		env = append(env, k+"="+v)
	}
	clientPorts, routePorts := make([]int, size), make([]int, size)
	var routes []string
	for i := range size {
		clientPorts[i], routePorts[i] = FreePort(t), FreePort(t)
		routes = append(routes, fmt.Sprintf("    \"nats-route://127.0.0.1:%d\"", routePorts[i]))
	}
	c := &Cluster{}
	for i := range size {
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
listen: "127.0.0.1:%d"
jetstream { store_dir: %q }
cluster {
  name: shoal-test
  listen: "127.0.0.1:%d"
  routes: [
%s
  ]
}
include ./accounts.conf
`, name, clientPorts[i], filepath.Join(dir, name), routePorts[i], strings.Join(routes, "\n"))
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if inProcess {
			n := &Node{Name: name, URL: fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]), conf: path}
			n.startInProcess(t)
			t.Cleanup(n.Kill)
			c.Nodes = append(c.Nodes, n)
			continue
		}
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			logf.Close()
			if t.Failed() {
				logTail(t, name, logf.Name(), 40)
			}
		})
		p := &proc{bin: bin, args: []string{"-c", path}, env: env, log: logf}
		p.start(t)
		t.Cleanup(p.kill)
		c.Nodes = append(c.Nodes, &Node{Name: name, URL: fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]), p: p})
	}
	for _, n := range c.Nodes {
		waitUp(t, n.URL, nats.UserInfo(RoleUser("admin"), RolePassword("admin")))
	}
	// JetStream answers once the meta group has elected a leader.
	nc, err := nats.Connect(c.URLs(), nats.UserInfo(RoleUser("admin"), RolePassword("admin")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := nc.Request("$JS.API.INFO", nil, 2*time.Second)
		if err == nil && !strings.Contains(string(m.Data), `"error"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the JetStream cluster did not become ready: %v (logs in %s)", err, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// logTail logs the last n lines of a node's server log: a failed cluster
// test shows what the servers saw (elections, routes, restores).
func logTail(t testing.TB, name, path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	t.Logf("nats-server %s, last %d log lines:\n%s", name, len(lines), strings.Join(lines, "\n"))
}
