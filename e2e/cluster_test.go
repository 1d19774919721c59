//go:build !e2e

package e2e_test

// The cluster drill: three nats-server processes (the system's binary,
// Debian's 2.9 in CI; scripts/test.sh installs it) on loopback ports as one
// JetStream cluster with the shipped users (deploy/nats/accounts.conf), R3
// streams provisioned by the admin role, an in-process producer and two
// in-process workers with their own roles over a few hundred tenants. The
// node that leads the jobs stream is killed (SIGKILL) mid-run and restarted:
// every tenant ends at head, each migration is applied once, no job is
// lost, the report is complete, and the worker that was connected to the
// killed node reconnects to another one and goes on.
//
// Size: 300 tenants (60 under -race, as CI runs it); SHOAL_CLUSTER_TENANTS=N
// for more. CI keeps it under a minute. With -v the drill prints its figures (docs/operations.md, Cluster).
// `go test ./...` runs it; scripts/e2e.sh (-tags e2e, the container tests)
// does not, so that it adds nothing to that script's time.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
	"github.com/shoal-dev/shoal/producer"
	"github.com/shoal-dev/shoal/worker"
	"go.uber.org/zap"
)

// clusterMigrations log every application in a table without a unique key,
// so a migration applied twice shows; the third one costs some CPU so that
// jobs are in flight when the node dies.
func clusterMigrations() fstest.MapFS {
	rows := 20000
	if raceEnabled {
		rows = 500
	}
	return fstest.MapFS{
		"0001_log.sql":   {Data: []byte("CREATE TABLE applied_log (version INTEGER);\nINSERT INTO applied_log VALUES (1);\n")},
		"0002_users.sql": {Data: []byte("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO applied_log VALUES (2);\n")},
		"0003_fill.sql": {Data: []byte("CREATE TABLE fill AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < " + strconv.Itoa(rows) + ") SELECT x FROM c;\n" +
			"INSERT INTO applied_log VALUES (3);\n")},
	}
}

func clusterTenants(t *testing.T) int {
	n := 300
	if raceEnabled {
		n = 60 // -race (CI): a smaller fleet, same checks
	}
	if s := os.Getenv("SHOAL_CLUSTER_TENANTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 10 {
			t.Fatalf("SHOAL_CLUSTER_TENANTS=%q: want a number >= 10", s)
		}
		n = v
	}
	return n
}

// roleDial connects as a shipped role to urls, in the order given.
func roleDial(t *testing.T, urls, role, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := fleet.Dial(context.Background(), fleet.DialOptions{
		URL: urls, Name: name, Auth: fleet.Auth{User: fleettest.RoleUser(role), Password: fleettest.RolePassword(role)},
		NATS: append([]nats.Option{nats.DontRandomize()}, opts...),
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// orderedURLs is the cluster's URLs with first's first.
func orderedURLs(c *fleettest.Cluster, first string) string {
	u := c.Node(first).URL
	for _, n := range c.Nodes {
		if n.Name != first {
			u += "," + n.URL
		}
	}
	return u
}

// TestClusterDrill runs the drill on system nats-server processes (2.9 on
// Debian), killed with SIGKILL.
func TestClusterDrill(t *testing.T) {
	t.Parallel()
	clusterDrill(t, fleettest.StartCluster(t, 3, false))
}

// TestClusterDrillModule runs it on three servers of the Go module (go.mod's
// nats-server) in this process; "killing" one shuts it down at once.
func TestClusterDrillModule(t *testing.T) {
	t.Parallel()
	clusterDrill(t, fleettest.StartCluster(t, 3, true))
}

func clusterDrill(t *testing.T, c *fleettest.Cluster) {
	tenants := clusterTenants(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The admin provisions R3 streams once the cluster has a meta leader.
	_, ajs := roleDial(t, c.URLs(), "admin", "drill admin")
	settings := fleet.Settings{Replicas: 3, AckWait: 5 * time.Second, MaxDeliver: 10}
	var err error
	// Every JetStream call in a polling loop has its own short deadline: a
	// request to a cluster that lost its leader may get no answer.
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 3*time.Second) }
	fleettest.Eventually(t, 30*time.Second, "R3 streams provisioned", func() bool {
		c, cancel := short()
		defer cancel()
		err = fleet.SetupStreams(c, ajs, settings)
		return err == nil
	})
	st, err := ajs.Stream(ctx, fleet.DefaultJobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("jobs stream has %d replicas", r)
	}
	leader := ""
	fleettest.Eventually(t, 30*time.Second, "a jobs stream leader", func() bool {
		c, cancel := short()
		defer cancel()
		info, err := st.Info(c)
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			leader = info.Cluster.Leader
		}
		return leader != ""
	})
	var others []string
	for _, n := range c.Nodes {
		if n.Name != leader {
			others = append(others, n.Name)
		}
	}

	// Tenants: a third fresh, a third at 1, a third at 2.
	root := t.TempDir()
	mfs := clusterMigrations()
	e, err := engine.New(engine.Options{Dir: mfs, DirName: "cluster-migrations", BusyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fleettest.Fleet(t, e, root, tenants, func(i int) int64 { return int64(i % 3) })

	// Results as they come (core subscription on a node that stays up).
	type seen struct {
		at      time.Time
		tenant  string
		worker  string
		attempt int
	}
	var mu sync.Mutex
	var got []seen
	runID := "cluster-drill"
	_, rjs := roleDial(t, orderedURLs(c, others[0]), "admin", "drill watcher")
	sub, err := rjs.Conn().Subscribe(fleet.DefaultNames().ResultSubject(runID), func(m *nats.Msg) {
		var r fleet.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return
		}
		mu.Lock()
		got = append(got, seen{time.Now(), r.Tenant, r.Worker, r.Attempt})
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	// Two workers: w-leader connected to the jobs stream's leader, w-other
	// to another node. Each has its own role user.
	type runningWorker struct {
		nc   *nats.Conn
		done chan error
	}
	startWorker := func(name, first string) runningWorker {
		nc, js := roleDial(t, orderedURLs(c, first), "worker", name)
		w, err := worker.New(nc, js, worker.Options{Engine: e, Root: root, Node: fleet.DefaultNode, Concurrency: 4, Name: name,
			Settings: settings, Backoff: 200 * time.Millisecond, NoBackup: true, Logger: zap.NewNop(), PollWait: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		return runningWorker{nc, done}
	}
	wl := startWorker("w-leader", leader)
	wo := startWorker("w-other", others[0])
	if wl.nc.ConnectedServerName() != leader {
		t.Fatalf("w-leader is connected to %s, not %s", wl.nc.ConnectedServerName(), leader)
	}

	// The producer, as the producer role, on the third node.
	_, pjs := roleDial(t, orderedURLs(c, others[1]), "producer", "drill producer")
	start := time.Now()
	pst, err := producer.Produce(ctx, pjs, producer.Options{Root: root, RunID: runID, Engine: e, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if pst.Jobs+pst.Current != tenants {
		t.Fatalf("producer: %+v for %d tenants", pst, tenants)
	}

	// Kill the jobs stream's leader a third of the way in.
	fleettest.Eventually(t, 60*time.Second, "a third of the results", func() bool { return count() >= tenants/3 })
	mu.Lock()
	lastBefore := got[len(got)-1].at
	mu.Unlock()
	// A connection that survives the kill, for the checks below (a new
	// connection needs JetStream to answer at once).
	_, sjs := roleDial(t, orderedURLs(c, others[0]), "admin", "drill check")
	killAt := time.Now()
	c.Node(leader).Kill()
	atKill := count()

	// The run goes on without it: more results, a new leader.
	fleettest.Eventually(t, 60*time.Second, "results after the kill", func() bool { return count() >= atKill+tenants/10 || count() >= tenants })
	newLeader := ""
	fleettest.Eventually(t, 30*time.Second, "a new jobs stream leader", func() bool {
		c, cancel := short()
		defer cancel()
		s, err := sjs.Stream(c, fleet.DefaultJobsStream)
		if err != nil {
			return false
		}
		if i := s.CachedInfo(); i.Cluster != nil && i.Cluster.Leader != "" && i.Cluster.Leader != leader {
			newLeader = i.Cluster.Leader
		}
		return newLeader != ""
	})
	restartAt := time.Now()
	c.Node(leader).Restart(t)

	// Every tenant reports; the queue empties; the restarted node catches up.
	tr := fleet.NewTracker(runID, start)
	fleettest.Eventually(t, 120*time.Second, "every tenant reported", func() bool {
		tr = fleet.NewTracker(runID, start)
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		defer fcancel()
		if err := fleet.Follow(fctx, sjs, fleet.DefaultNames(), runID, tr, fleet.FollowOptions{}); err != nil {
			return false
		}
		return len(tr.Report(time.Now()).Databases) >= tenants
	})
	end := time.Now()
	fleettest.Eventually(t, 60*time.Second, "an empty work queue", func() bool {
		c, cancel := short()
		defer cancel()
		s, err := sjs.Stream(c, fleet.DefaultJobsStream)
		return err == nil && s.CachedInfo().State.Msgs == 0
	})
	fleettest.Eventually(t, 60*time.Second, "the restarted node current again", func() bool {
		c, cancel := short()
		defer cancel()
		s, err := sjs.Stream(c, fleet.DefaultJobsStream)
		if err != nil {
			return false
		}
		i := s.CachedInfo()
		if i.Cluster == nil || len(i.Cluster.Replicas) != 2 {
			return false
		}
		for _, p := range i.Cluster.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
		return true
	})

	// The worker that was on the killed node reconnected elsewhere and went on.
	if wl.nc.Stats().Reconnects == 0 || wl.nc.ConnectedServerName() == "" {
		t.Fatalf("w-leader did not reconnect (%d reconnects, on %q)", wl.nc.Stats().Reconnects, wl.nc.ConnectedServerName())
	}
	mu.Lock()
	all := append([]seen(nil), got...)
	mu.Unlock()
	wlAfter := 0
	for _, s := range all {
		if s.worker == "w-leader" && s.at.After(killAt) {
			wlAfter++
		}
	}
	if wlAfter == 0 {
		t.Fatalf("w-leader published no result after the kill")
	}

	// The report: complete, every tenant at head.
	rep := tr.Report(time.Now())
	if len(rep.Databases) != tenants || !rep.OK() {
		t.Fatalf("report: %d databases, failed %+v", len(rep.Databases), rep.Failed())
	}
	// Each migration applied once, every DB at head.
	for _, d := range rep.Databases {
		if h := fleettest.History(t, d.Path); len(h) != 3 || h[0] != 1 || h[1] != 2 || h[2] != 3 {
			t.Fatalf("%s: history %v", d.Tenant, h)
		}
		if n := appliedRows(t, d.Path); n != 3 {
			t.Fatalf("%s: %d applied_log rows, want 3 (a migration applied twice?)", d.Tenant, n)
		}
	}

	// Figures.
	firstAfter := time.Time{}
	attempts := map[string]int{}
	results := map[string]int{}
	var gapBefore, gapAfter time.Duration
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	prev := all[0].at
	for _, s := range all {
		if s.at.After(killAt) && firstAfter.IsZero() {
			firstAfter = s.at
		}
		if s.at.Before(killAt) {
			gapBefore = max(gapBefore, s.at.Sub(prev))
		} else {
			gapAfter = max(gapAfter, s.at.Sub(prev))
		}
		prev = s.at
		results[s.tenant]++
		attempts[s.tenant] = max(attempts[s.tenant], s.attempt)
	}
	// Time lost: the run's length minus what it would have taken at the
	// rate before the kill.
	rate := float64(atKill) / killAt.Sub(all[0].at).Seconds()
	lost := end.Sub(all[0].at).Seconds() - float64(tenants)/rate
	// Stored results (the stream de-duplicates a result published twice):
	// more than one for a tenant means its job ran again after a lost ack.
	stored := map[string]int{}
	storedTotal := 0
	{
		fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
		err := fleet.Follow(fctx, sjs, fleet.DefaultNames(), runID, fleet.NewTracker(runID, start), fleet.FollowOptions{
			OnResult: func(r fleet.Result) {
				stored[r.Tenant]++
				storedTotal++
				attempts[r.Tenant] = max(attempts[r.Tenant], r.Attempt)
			}})
		fcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	multiAttempt, multiResult, multiStored := 0, 0, 0
	for tn := range results {
		if attempts[tn] > 1 {
			multiAttempt++
		}
		if results[tn] > 1 {
			multiResult++
		}
		if stored[tn] > 1 {
			multiStored++
		}
	}
	stalled := firstAfter.Sub(lastBefore)
	t.Logf("cluster drill (nats-server %s): %d tenants, %d jobs + %d found current by the producer, killed %s (jobs leader) after %d results; new leader %s; "+
		"first result after the kill %.2fs after the last one before; longest gap between results before the kill %.2fs, after %.2fs; "+
		"%.1f results/s before the kill, time lost %.2fs; restarted after %.2fs; run %.2fs; "+
		"%d result messages seen for %d tenants (%d tenants' published more than once), %d results stored (%d tenants with more than one: a job run again), "+
		"%d jobs delivered more than once (attempt > 1); "+
		"w-leader: %d reconnects, now on %s, %d results after the kill",
		serverVersion(t, sjs), tenants, pst.Jobs, pst.Current, leader, atKill, newLeader,
		stalled.Seconds(), gapBefore.Seconds(), gapAfter.Seconds(), rate, lost, restartAt.Sub(killAt).Seconds(), end.Sub(start).Seconds(),
		len(all), len(results), multiResult, storedTotal, multiStored, multiAttempt,
		wl.nc.Stats().Reconnects, wl.nc.ConnectedServerName(), wlAfter)
	if f := os.Getenv("SHOAL_CLUSTER_FIGURES"); f != "" {
		line := fmt.Sprintf("| %s | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %d | %d | %d | %d |\n", serverVersion(t, sjs), tenants, rate, gapBefore.Seconds(),
			gapAfter.Seconds(), lost, end.Sub(all[0].at).Seconds(), storedTotal, multiStored, multiAttempt, wlAfter)
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fh.WriteString(line)
			fh.Close()
		}
	}
	cancel()
	for _, w := range []runningWorker{wl, wo} {
		select {
		case err := <-w.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("a worker did not stop within 60s of its context's end")
		}
	}
}

func serverVersion(t *testing.T, js jetstream.JetStream) string {
	return js.Conn().ConnectedServerVersion()
}

func appliedRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM applied_log").Scan(&n); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}
