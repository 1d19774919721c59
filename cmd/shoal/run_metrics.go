package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/urfave/cli/v2"
)

// listenFlag serves a followed run's progress for Prometheus (run,
// produce --wait, results --follow).
func listenFlag() cli.Flag {
	return &cli.StringFlag{Name: "listen", Usage: "serve the run's progress on /metrics (Prometheus) at this address while it runs, e.g. :9091"}
}

// runProgress is the tracker of the run being followed, once there is one.
type runProgress struct{ t atomic.Pointer[fleet.Tracker] }

func (p *runProgress) set(t *fleet.Tracker) { p.t.Store(t) }

// now is the run's progress (zero before the run has a tracker).
func (p *runProgress) now() fleet.Progress {
	t := p.t.Load()
	if t == nil {
		return fleet.Progress{Total: -1}
	}
	return t.Progress(time.Now())
}

// runMetricsHandler serves /metrics: the run's progress, read from its
// tracker at each scrape (O(1)), with the Go and process collectors.
func runMetricsHandler(runID string, p *runProgress) http.Handler {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"run_id": runID}
	gauge := func(name, help string, f func(fleet.Progress) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return f(p.now()) }))
	}
	gauge("shoal_run_tenants_total", "Tenants in the run: the producer's count, or while its paced walk goes on a count of the tree ahead of it; -1 while neither is known.",
		func(pr fleet.Progress) float64 { return float64(pr.Total) })
	gauge("shoal_run_tenants_done", "Tenants with a result in this run.",
		func(pr fleet.Progress) float64 { return float64(pr.Done) })
	gauge("shoal_run_tenants_failed", "Tenants whose result is not at head (failed, rejected, corrupt, skipped, ...).",
		func(pr fleet.Progress) float64 { return float64(pr.Failed) })
	gauge("shoal_run_progress_ratio", "Done / total (0 while the total is unknown).",
		func(pr fleet.Progress) float64 {
			if pr.Total <= 0 {
				return 0
			}
			return float64(pr.Done) / float64(pr.Total)
		})
	gauge("shoal_run_tenants_per_second", "Results per second since the run started.",
		func(pr fleet.Progress) float64 { return pr.Rate })
	gauge("shoal_run_eta_seconds", "Estimated seconds until every tenant reported (0 when unknown or done).",
		func(pr fleet.Progress) float64 { return pr.ETA.Seconds() })
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mux
}

// serveRunMetrics serves runMetricsHandler on --listen (if set) until the
// returned stop is called. The address is bound before the run starts: a
// port in use fails the command at once.
func serveRunMetrics(c *cli.Context, runID string, p *runProgress) (stop func(), err error) {
	addr := c.String("listen")
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, failure(err, "--listen %s: %v", addr, err)
	}
	srv := &http.Server{Handler: runMetricsHandler(runID, p), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(c.App.ErrWriter, "shoal: --listen %s: %v\n", addr, err)
		}
	}()
	fmt.Fprintf(c.App.ErrWriter, "run %s: progress on http://%s/metrics\n", runID, ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// serveTrackerMetrics is serveRunMetrics for a run whose tracker exists
// already (produce --wait, results --follow).
func serveTrackerMetrics(c *cli.Context, runID string, t *fleet.Tracker) (stop func(), err error) {
	p := &runProgress{}
	p.set(t)
	return serveRunMetrics(c, runID, p)
}
