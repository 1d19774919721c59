package worker

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are the worker's counters, served in the Prometheus text format
// (written by hand: no client library).
type Metrics struct {
	inFlight     atomic.Int64
	redeliveries atomic.Int64

	mu      sync.Mutex
	jobs    map[string]int64 // by outcome (plus "retry", "cancelled")
	buckets []float64        // upper bounds, seconds
	counts  []int64          // per bucket (non-cumulative), last = +Inf
	sum     float64
	n       int64
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	b := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
	return &Metrics{jobs: map[string]int64{}, buckets: b, counts: make([]int64, len(b)+1)}
}

func (m *Metrics) observe(outcome string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[outcome]++
	s := d.Seconds()
	i := sort.SearchFloat64s(m.buckets, s)
	m.counts[i]++
	m.sum += s
	m.n++
}

// Jobs returns the count of jobs handled with an outcome.
func (m *Metrics) Jobs(outcome string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jobs[outcome]
}

// InFlight is the number of jobs being handled now.
func (m *Metrics) InFlight() int64 { return m.inFlight.Load() }

// Write writes the metrics in the Prometheus text exposition format 0.0.4.
func (m *Metrics) Write(w io.Writer, ready bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP shoal_worker_jobs_total Jobs handled, by outcome (retry: a failed attempt given back for another; cancelled: given back at shutdown).")
	fmt.Fprintln(w, "# TYPE shoal_worker_jobs_total counter")
	keys := make([]string, 0, len(m.jobs))
	for k := range m.jobs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "shoal_worker_jobs_total{outcome=%q} %d\n", k, m.jobs[k])
	}
	fmt.Fprintln(w, "# HELP shoal_worker_job_duration_seconds Time to handle one job (migrate, publish the result, ack).")
	fmt.Fprintln(w, "# TYPE shoal_worker_job_duration_seconds histogram")
	var cum int64
	for i, b := range m.buckets {
		cum += m.counts[i]
		fmt.Fprintf(w, "shoal_worker_job_duration_seconds_bucket{le=\"%g\"} %d\n", b, cum)
	}
	cum += m.counts[len(m.buckets)]
	fmt.Fprintf(w, "shoal_worker_job_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "shoal_worker_job_duration_seconds_sum %g\n", m.sum)
	fmt.Fprintf(w, "shoal_worker_job_duration_seconds_count %d\n", m.n)
	fmt.Fprintln(w, "# HELP shoal_worker_jobs_in_flight Jobs being handled now.")
	fmt.Fprintln(w, "# TYPE shoal_worker_jobs_in_flight gauge")
	fmt.Fprintf(w, "shoal_worker_jobs_in_flight %d\n", m.inFlight.Load())
	fmt.Fprintln(w, "# HELP shoal_worker_redeliveries_total Jobs received again (attempt > 1).")
	fmt.Fprintln(w, "# TYPE shoal_worker_redeliveries_total counter")
	fmt.Fprintf(w, "shoal_worker_redeliveries_total %d\n", m.redeliveries.Load())
	fmt.Fprintln(w, "# HELP shoal_worker_ready 1 when connected to NATS with the consumers provisioned.")
	fmt.Fprintln(w, "# TYPE shoal_worker_ready gauge")
	r := 0
	if ready {
		r = 1
	}
	fmt.Fprintf(w, "shoal_worker_ready %d\n", r)
}

// Handler serves /healthz (the process is up), /readyz (connected to NATS
// and the consumers exist) and /metrics.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !w.Ready() {
			rw.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(rw, "not ready: not connected to NATS or consumers not provisioned")
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	mux.HandleFunc("/metrics", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Metrics.Write(rw, w.Ready())
	})
	return mux
}
