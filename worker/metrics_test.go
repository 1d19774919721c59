package worker

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/fleet/fleettest"
)

// TestMetricsContent: /metrics is client_golang's exposition, with the Go
// runtime and process collectors, results per outcome, the time jobs spent
// in the queue and in the engine, and the jobs pending in the consumers
// (read from NATS at each scrape: published jobs no worker took yet).
func TestMetricsContent(t *testing.T) {
	t.Parallel()
	v := newEnv(t, fleettest.StartEmbedded(t, "", 0).URL)
	fleettest.Fleet(t, v.e, v.root, 3, nil)
	v.produce("metrics", nil)
	w := v.worker("w", 2, nil)
	v.wait("metrics", 3, 20*time.Second)
	srv := httptest.NewServer(w.w.Handler())
	defer srv.Close()
	get := func() string {
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Fatalf("content type %q", ct)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	fleettest.Eventually(t, 5*time.Second, "metrics", func() bool {
		return strings.Contains(get(), `shoal_worker_results_total{outcome="migrated"} 3`)
	})
	body := get()
	for _, want := range []string{
		"# TYPE go_goroutines gauge", "# TYPE go_memstats_heap_alloc_bytes gauge",
		"# TYPE process_resident_memory_bytes gauge", "# TYPE process_cpu_seconds_total counter",
		`shoal_worker_jobs_total{outcome="migrated"} 3`,
		"# TYPE shoal_worker_job_queue_seconds histogram", "shoal_worker_job_queue_seconds_count 3",
		"# TYPE shoal_worker_engine_seconds histogram", "shoal_worker_engine_seconds_count 3",
		`shoal_worker_jobs_pending{node="` + w.w.o.Node + `",priority="normal"} 0`,
		`shoal_worker_jobs_pending{node="` + w.w.o.Node + `",priority="high"} 0`,
		"shoal_worker_ready 1",
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	// Jobs no worker takes show as pending.
	w.stop()
	fleettest.Fleet(t, v.e, v.root, 5, nil)
	v.produce("metrics-2", nil)
	re := regexp.MustCompile(`shoal_worker_jobs_pending\{node="[^"]+",priority="normal"\} (\d+)`)
	fleettest.Eventually(t, 10*time.Second, "pending jobs", func() bool {
		m := re.FindStringSubmatch(get())
		if m == nil {
			return false
		}
		n, _ := strconv.Atoi(m[1])
		return n > 0
	})
}
