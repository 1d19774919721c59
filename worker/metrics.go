package worker

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the worker's metrics, served in the Prometheus formats by
// prometheus/client_golang, with the Go runtime (go_*) and process
// (process_*) collectors dashboards and alerts expect.
type Metrics struct {
	inFlight     atomic.Int64
	redeliveries atomic.Int64

	reg      *prometheus.Registry
	jobs     *prometheus.CounterVec // by outcome (plus "retry", "cancelled")
	results  *prometheus.CounterVec // final results published, by outcome
	duration prometheus.Histogram
	queue    prometheus.Histogram
	engine   prometheus.Histogram

	mu      sync.Mutex
	counts  map[string]int64 // jobs by outcome (Jobs)
	ready   func() bool
	pending func(ctx context.Context) []Pending
}

// Pending is how many jobs wait in one consumer (a node and a priority).
type Pending struct {
	Node, Priority string
	Jobs           uint64 // not yet delivered
	AckPending     uint64 // delivered, not yet acknowledged
}

var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// NewMetrics returns empty metrics with their own registry.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), counts: map[string]int64{}}
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_worker_jobs_total",
		Help: "Jobs handled, by outcome (retry: a failed attempt given back for another; cancelled: given back at shutdown)."}, []string{"outcome"})
	m.results = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_worker_results_total",
		Help: "Final results published, by outcome (migrated, current, failed, ...)."}, []string{"outcome"})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_worker_job_duration_seconds",
		Help: "Time to handle one job (migrate, publish the result, ack).", Buckets: buckets})
	m.queue = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_worker_job_queue_seconds",
		Help: "Time a job waited in the queue: from being stored in the stream to this delivery.", Buckets: append(append([]float64{}, buckets...), 900, 3600)})
	m.engine = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_worker_engine_seconds",
		Help: "Time in the engine for one job (lock, backup, migration).", Buckets: buckets})
	m.reg.MustRegister(m.jobs, m.results, m.duration, m.queue, m.engine,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shoal_worker_jobs_in_flight", Help: "Jobs being handled now."},
			func() float64 { return float64(m.inFlight.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shoal_worker_redeliveries_total", Help: "Jobs received again (attempt > 1)."},
			func() float64 { return float64(m.redeliveries.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shoal_worker_ready", Help: "1 when connected to NATS with the consumers provisioned."},
			func() float64 {
				m.mu.Lock()
				ready := m.ready
				m.mu.Unlock()
				if ready != nil && ready() {
					return 1
				}
				return 0
			}),
		pendingCollector{m})
	return m
}

var (
	pendingDesc = prometheus.NewDesc("shoal_worker_jobs_pending",
		"Jobs waiting in this worker's consumers, not yet delivered (from the consumer info), by node and priority.", []string{"node", "priority"}, nil)
	ackPendingDesc = prometheus.NewDesc("shoal_worker_jobs_ack_pending",
		"Jobs delivered from this worker's consumers and not yet acknowledged (by any worker), by node and priority.", []string{"node", "priority"}, nil)
)

// pendingCollector asks NATS for the consumers' pending counts at each
// scrape (bounded to a few seconds; nothing is reported if NATS is away).
type pendingCollector struct{ m *Metrics }

func (c pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- ackPendingDesc
}

func (c pendingCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.pending
	c.m.mu.Unlock()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, p := range f(ctx) {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(p.Jobs), p.Node, p.Priority)
		ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(p.AckPending), p.Node, p.Priority)
	}
}

// observe counts a handled job and its duration; outcomes other than
// "retry" and "cancelled" are final results.
func (m *Metrics) observe(outcome string, d time.Duration) {
	m.jobs.WithLabelValues(outcome).Inc()
	if outcome != "retry" && outcome != "cancelled" {
		m.results.WithLabelValues(outcome).Inc()
	}
	m.duration.Observe(d.Seconds())
	m.mu.Lock()
	m.counts[outcome]++
	m.mu.Unlock()
}

// observeQueue records how long a job waited in the queue.
func (m *Metrics) observeQueue(d time.Duration) {
	if d >= 0 {
		m.queue.Observe(d.Seconds())
	}
}

// observeEngine records the time one job spent in the engine.
func (m *Metrics) observeEngine(d time.Duration) { m.engine.Observe(d.Seconds()) }

// Jobs returns the count of jobs handled with an outcome.
func (m *Metrics) Jobs(outcome string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[outcome]
}

// InFlight is the number of jobs being handled now.
func (m *Metrics) InFlight() int64 { return m.inFlight.Load() }

// Registry is the registry the metrics are in (to add more collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) setSources(ready func() bool, pending func(ctx context.Context) []Pending) {
	m.mu.Lock()
	m.ready, m.pending = ready, pending
	m.mu.Unlock()
}

// Handler serves /healthz (the process is up), /readyz (connected to NATS
// and the consumers exist) and /metrics.
func (w *Worker) Handler() http.Handler {
	w.Metrics.setSources(w.Ready, w.pending)
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
	mux.Handle("/metrics", promhttp.HandlerFor(w.Metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mux
}
