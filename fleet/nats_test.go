package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
)

// Provisioning is idempotent and safe to run concurrently from many
// components; the consumers carry the settings.
func TestProvisionIdempotent(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	s := fleet.Settings{AckWait: 7 * time.Second, MaxDeliver: 4}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := fleet.Provision(context.Background(), js, s, "eu")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	st, err := js.Stream(ctx, fleet.DefaultJobsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.Storage != jetstream.FileStorage || cfg.Subjects[0] != "shoal.jobs.>" {
		t.Fatalf("jobs stream %+v", cfg)
	}
	rs, err := js.Stream(ctx, fleet.DefaultResultsStream)
	if err != nil || rs.CachedInfo().Config.Retention != jetstream.LimitsPolicy || rs.CachedInfo().Config.Subjects[0] != "shoal.results.>" {
		t.Fatalf("results stream: %v", err)
	}
	for name, filter := range map[string]string{"shoal_eu": "shoal.jobs.eu", "shoal_eu_high": "shoal.jobs.eu.high"} {
		c, err := js.Consumer(ctx, fleet.DefaultJobsStream, name)
		if err != nil {
			t.Fatal(err)
		}
		cc := c.CachedInfo().Config
		if cc.FilterSubject != filter || cc.AckWait != 7*time.Second || cc.MaxDeliver != 4 || cc.AckPolicy != jetstream.AckExplicitPolicy || cc.Durable != name {
			t.Fatalf("%s: %+v", name, cc)
		}
	}
	// Changing settings updates the consumers.
	s.AckWait = 9 * time.Second
	if _, bulk, err := fleet.Provision(ctx, js, s, "eu"); err != nil || bulk.CachedInfo().Config.AckWait != 9*time.Second {
		t.Fatalf("update: %v", err)
	}
	// Custom names.
	n := fleet.Names{JobsStream: "J2", ResultsStream: "R2", JobsPrefix: "x.jobs", ResultsPrefix: "x.results", Consumer: "c"}
	if _, _, err := fleet.Provision(ctx, js, fleet.Settings{Names: n}, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, "J2", "c_default_high"); err != nil {
		t.Fatal(err)
	}
	// A stream with the wrong retention is refused with a clear error.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BAD", Subjects: []string{"bad.>"}}); err != nil {
		t.Fatal(err)
	}
	_, _, err = fleet.Provision(ctx, js, fleet.Settings{Names: fleet.Names{JobsStream: "BAD", JobsPrefix: "bad", ResultsStream: "R3", ResultsPrefix: "r3"}}, "default")
	if err == nil || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("wrong retention: %v", err)
	}
}

// An account without room for the streams gets an error saying so.
func TestProvisionNoRoom(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts { T: { jetstream: { max_streams: 1, max_file: 10MB, max_mem: 1MB }, users: [ {user: t, password: t} ] } }
`, dir)), 0o644)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	url := strings.Replace(ns.ClientURL(), "nats://", "nats://t:t@", 1)
	_, js := fleettest.Connect(t, url)
	err = fleet.ProvisionStreams(context.Background(), js, fleet.Settings{})
	if err == nil || !strings.Contains(err.Error(), "no room") {
		t.Fatalf("got %v, want an error saying the account has no room", err)
	}
}

// The producer and enqueue create missing consumers but never reset the ack
// wait and max deliver that workers (or `nats setup`) configured.
func TestEnsureConsumersKeepsWorkerSettings(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	ctx := context.Background()
	// Nothing yet: EnsureConsumers creates them with its settings.
	if _, _, err := fleet.Provision(ctx, js, fleet.Settings{}, "n1"); err != nil {
		t.Fatal(err)
	}
	worker := fleet.Settings{AckWait: 5 * time.Second, MaxDeliver: 3}
	if _, _, err := fleet.ProvisionConsumers(ctx, js, worker, "n1"); err != nil {
		t.Fatal(err)
	}
	high, bulk, err := fleet.EnsureConsumers(ctx, js, fleet.Settings{}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []jetstream.Consumer{high, bulk} {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.AckWait != 5*time.Second || info.Config.MaxDeliver != 3 {
			t.Fatalf("%s: ack wait %s, max deliver %d: the producer reset the workers' settings", info.Name, info.Config.AckWait, info.Config.MaxDeliver)
		}
	}
	if _, _, err := fleet.EnsureConsumers(ctx, js, fleet.Settings{}, "n2"); err != nil {
		t.Fatalf("missing consumers are created: %v", err)
	}
}

// Follow returns once the stored results are read, although more arrive
// and ctx never ends: its reader goroutine, blocked handing on the newer
// ones, must end with it.
func TestFollowReaderEndsWithIt(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	ctx := context.Background()
	if err := fleet.ProvisionStreams(ctx, js, fleet.Settings{}); err != nil {
		t.Fatal(err)
	}
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			data := fmt.Sprintf(`{"run_id":"leak","tenant":"t-%04d","outcome":"current","applied":[]}`, i)
			if _, err := js.Publish(ctx, "shoal.results.leak", []byte(data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	const stored = 50
	publish(0, stored)
	// The reader is blocked when its channel is full: wait for that on the
	// last stored result, so Follow returns with the reader stuck.
	readerBlocked := func() bool {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			// Blocked in Follow's own select (not in the iterator's).
			if lines := strings.Split(g, "\n"); len(lines) > 1 && strings.Contains(lines[0], "[select") &&
				strings.Contains(lines[1], "fleet.Follow.func") {
				return true
			}
		}
		return false
	}
	n := 0
	tr := fleet.NewTracker("leak", time.Time{})
	err := fleet.Follow(ctx, js, fleet.DefaultNames(), "leak", tr, fleet.FollowOptions{OnResult: func(fleet.Result) {
		n++
		switch n {
		case 1:
			publish(stored, 400) // more than the reader's channel holds
		case stored:
			fleettest.Eventually(t, 10*time.Second, "the reader blocked", readerBlocked)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n != stored {
		t.Fatalf("read %d results, want the %d stored", n, stored)
	}
	fleettest.Eventually(t, 10*time.Second, "the reader gone", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "fleet.Follow.func")
	})
}

// TestFollowSkipsItsPass: the results a producer made itself are published
// marked with its pass id; a follower given its pass id (a producer, which
// has its own already) reads past them and past another pass's (never its
// own: no job of it has them), any other reader counts them all.
func TestFollowSkipsItsPass(t *testing.T) {
	t.Parallel()
	srv := fleettest.StartEmbedded(t, "", 0)
	_, js := fleettest.Connect(t, srv.URL)
	ctx := context.Background()
	if _, _, err := fleet.Provision(ctx, js, fleet.Settings{}, fleet.DefaultNode); err != nil {
		t.Fatal(err)
	}
	names := fleet.Names{}
	pass := fleet.NewPassID()
	if len(pass) != 32 || pass == fleet.NewPassID() {
		t.Fatalf("pass id %q", pass)
	}
	for i, mark := range []string{pass, "", pass, "another pass"} {
		msg := nats.NewMsg(names.ResultSubject("r"))
		msg.Data = []byte(fmt.Sprintf(`{"run_id":"r","tenant":"t%d","outcome":"current"}`, i))
		if mark != "" {
			msg.Header.Set(fleet.PassHeader, mark)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		skip string
		want int
	}{{pass, 1}, {"", 4}} {
		tr := fleet.NewTracker("r", time.Now())
		if err := fleet.Follow(ctx, js, names, "r", tr, fleet.FollowOptions{SkipPass: c.skip}); err != nil {
			t.Fatal(err)
		}
		if got := tr.Progress(time.Now()).Done; got != c.want || (c.skip != "" && !tr.Has("t1")) {
			t.Fatalf("SkipPass %q: %d results read, want %d", c.skip, got, c.want)
		}
	}
}
