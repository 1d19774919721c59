package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/shoal-dev/shoal/engine"
)

func syntheticResult(i int, t0 time.Time) Result {
	r := Result{RunID: "big", JobID: fmt.Sprintf("%032x", i), Tenant: fmt.Sprintf("tenant-%06d/app.db", i),
		Path: fmt.Sprintf("/srv/tenants/tenant-%06d/app.db", i), Outcome: engine.OutcomeMigrated,
		From: Int64(0), To: Int64(6), Attempt: 1, Worker: "run-worker-1", DurationMs: 12, At: t0.Add(time.Duration(i) * time.Millisecond)}
	for v := int64(1); v <= 6; v++ {
		r.Applied = append(r.Applied, engine.Applied{Version: v, Name: fmt.Sprintf("%04d_step_number_%d", v, v), DurationMs: 1})
	}
	if i%1000 == 7 {
		r.Outcome, r.To, r.Applied, r.Error = engine.OutcomeFailed, Int64(0), nil, String("migration 0001: no such table: users")
	}
	return r
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// heapWatcher is a writer that measures the live heap every `every` writes.
type heapWatcher struct {
	w      io.Writer
	n      int
	every  int
	peak   uint64
	writes int
}

func (h *heapWatcher) Write(p []byte) (int, error) {
	h.writes++
	if h.writes%h.every == 0 {
		h.peak = max(h.peak, liveHeap())
	}
	return h.w.Write(p)
}

// TestTrackerEntryIsCompact: the tracker keeps one 24-byte entry per
// tenant, its name included, with outcomes as codes and what only a tenant
// with several results needs aside, in pages: adding a tenant allocates
// nothing of its own (a Go map from name to entry, with the name's own
// allocation, took about 85 bytes a tenant; the entry by pointer with
// outcome strings, 174).
func TestTrackerEntryIsCompact(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 24 {
		t.Fatalf("a tracker entry is %d bytes, want <= 24", n)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rs := make([]Result, 3*spoolAfter+200)
	for i := range rs {
		rs[i] = syntheticResult(i, t0)
		rs[i].Applied = nil
	}
	tr := NewTracker("r", t0)
	defer tr.Close()
	next := 0
	for ; next < 2*spoolAfter; next++ {
		tr.Add(rs[next])
	}
	if a := testing.AllocsPerRun(spoolAfter, func() { tr.Add(rs[next]); next++ }); a > 0.05 {
		t.Fatalf("%.2f allocations per tenant added", a)
	}
	if r, ok := tr.Result(rs[next-1].Tenant); !ok || r.Tenant != rs[next-1].Tenant || !tr.Has(rs[7].Tenant) || tr.Has("nobody") {
		t.Fatalf("result %+v %v", r, ok)
	}
}

// TestReportOfManyTenantsIsWrittenWithoutHoldingThem: 50,000 results (each
// about 1 KB as JSON) tracked and written as a report. The tracker keeps a
// compact entry per tenant (the results are spooled), and the report is
// written one entry at a time: the live heap stays far below what holding
// the results would take (the tracker that kept every Result, and a report
// marshalled whole, held more than 800 bytes per tenant before the write
// and several times that during it).
func TestReportOfManyTenantsIsWrittenWithoutHoldingThem(t *testing.T) {
	n := 50000
	if raceEnabled {
		n = 10000
	}
	perTenant := 95 // bytes of live heap allowed per tenant (76 tracked, 81 while writing; a map from name to entry took 106 and 122, the entry by pointer with outcome strings 174)
	if raceEnabled {
		perTenant = 320 // a fifth of the tenants, and the race detector's own allocations (TestTrackerEntryIsCompact holds the entry's size there)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := liveHeap()
	tr := NewTracker("big", t0)
	defer tr.Close()
	for i := range n {
		tr.Add(syntheticResult(i, t0))
	}
	held := liveHeap() - min(base, liveHeap())
	if held > uint64(n*perTenant) {
		t.Fatalf("the tracker holds %d bytes for %d tenants (%d per tenant), want <= %d per tenant", held, n, held/uint64(n), perTenant)
	}
	if p := tr.Progress(t0); p.Done != n || p.Failed != n/1000 {
		t.Fatalf("progress %+v", p)
	}
	path := filepath.Join(t.TempDir(), "report.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rep := tr.StreamReport(t0.Add(time.Hour))
	hw := &heapWatcher{w: f, every: 5000}
	if err := rep.WriteJSON(hw); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if hw.peak == 0 || hw.peak-min(base, hw.peak) > uint64(n*perTenant) {
		t.Fatalf("live heap while writing the report: %d bytes above the start, want <= %d", hw.peak-min(base, hw.peak), n*perTenant)
	}
	t.Logf("live heap: %d B/tenant tracked, %d B/tenant while writing", held/uint64(n), (hw.peak-min(base, hw.peak))/uint64(n))
	// The file is the report: every tenant once, in order, with the summary.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Databases) != n || got.Summary.Total != n || got.Summary.Counts["failed"] != n/1000 ||
		got.Summary.Counts["migrated"] != n-n/1000 || got.Databases[n-1].Tenant != fmt.Sprintf("tenant-%06d/app.db", n-1) ||
		len(got.Databases[0].Applied) != 6 {
		t.Fatalf("report: %d entries, summary %+v", len(got.Databases), got.Summary)
	}
	if len(rep.Failed()) != n/1000 || rep.OK() {
		t.Fatalf("failed %d, ok %v", len(rep.Failed()), rep.OK())
	}
}

// TestStreamedReportIsTheMarshalledReport: the report written one entry at a
// time is byte for byte json.MarshalIndent of the whole report (the format
// readers knew), empty or not, merged entries included, results held in
// memory or spooled (past spoolAfter: copied as spooled when a tenant has
// one, so a single result's unsorted applied list is spooled sorted).
func TestStreamedReportIsTheMarshalledReport(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewSource(2))
	for _, n := range []int{0, 1, 30, spoolAfter + 300} {
		tr := NewTracker("r<&>", t0)
		for i := range n {
			r := syntheticResult(i, t0)
			switch i % 5 {
			case 1: // unsorted, with a version twice
				r.Applied = append(r.Applied, r.Applied[2], engine.Applied{Version: 0, Name: "zero"})
			case 2: // anything (valid UTF-8, as every result read from a stream is), under its own tenant
				r = validUTF8(randomResult(rng))
				r.Tenant = fmt.Sprintf("tenant-%06d/%s", i, r.Tenant)
				if r.At.Year() > 9999 {
					r.At = t0
				}
			}
			tr.Add(r)
			if i%3 == 0 { // a second result: a later current never replaces migrated
				tr.Add(Result{Tenant: fmt.Sprintf("tenant-%06d/app.db", i), Outcome: engine.OutcomeCurrent, From: Int64(6), To: Int64(6),
					Worker: "w2", At: t0.Add(time.Hour)})
			}
		}
		now := t0.Add(2 * time.Hour)
		want, err := json.MarshalIndent(tr.Report(now), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var got bytes.Buffer
		if err := tr.StreamReport(now).WriteJSON(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			i := firstDiffByte(got.Bytes(), want)
			lo := max(i-300, 0)
			t.Fatalf("%d tenants: streamed report differs at byte %d:\n%s\nwant:\n%s", n, i, got.Bytes()[lo:min(i+200, got.Len())], want[lo:min(i+200, len(want))])
		}
		// Marshalling a streaming report gives the same object.
		m, err := json.Marshal(tr.StreamReport(now))
		if err != nil || !json.Valid(m) {
			t.Fatalf("marshal streaming report: %v", err)
		}
		var a, b any
		json.Unmarshal(m, &a)
		json.Unmarshal(want, &b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("marshalled streaming report differs")
		}
		tr.Close()
	}
}

// TestTrackerWithoutSpoolKeepsResults: with no temporary directory the
// results stay in memory and everything still works.
func TestTrackerWithoutSpoolKeepsResults(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	tr := NewTracker("r", time.Time{})
	tr.Add(Result{Tenant: "a", Outcome: "failed", Error: String("boom")})
	for i := range spoolAfter + 10 {
		tr.Add(Result{Tenant: fmt.Sprintf("t%05d", i), Outcome: "current"})
	}
	if r, ok := tr.Result("a"); !ok || r.Outcome != "failed" || *r.Error != "boom" {
		t.Fatalf("result %+v %v", r, ok)
	}
	if r, ok := tr.Result(fmt.Sprintf("t%05d", spoolAfter+5)); !ok || r.Outcome != "current" {
		t.Fatalf("result %+v %v", r, ok)
	}
	if rep := tr.Report(time.Now()); len(rep.Databases) != spoolAfter+11 || rep.OK() {
		t.Fatalf("report: %d entries", len(rep.Databases))
	}
}

// TestTrackerBoundsOutcomes: results read from a stream are input; a
// stream of results with ever new outcome strings is counted under a
// bounded set of codes (the rest as "(other)"), never a wrapped code.
func TestTrackerBoundsOutcomes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := NewTracker("hostile", t0)
	defer tr.Close()
	const n = 3 * maxOutcomes
	for i := range n {
		tr.Add(Result{RunID: "hostile", Tenant: fmt.Sprintf("t%05d", i), Outcome: fmt.Sprintf("weird-%d", i), At: t0})
	}
	rep := tr.StreamReport(t0)
	if len(rep.Summary.Counts) > maxOutcomes || rep.Summary.Counts[otherOutcome] == 0 {
		t.Fatalf("%d outcomes counted, %d as %s", len(rep.Summary.Counts), rep.Summary.Counts[otherOutcome], otherOutcome)
	}
	total := 0
	for _, c := range rep.Summary.Counts {
		total += c
	}
	if total != n || tr.Progress(t0).Failed != n {
		t.Fatalf("counted %d of %d, failed %d", total, n, tr.Progress(t0).Failed)
	}
	if r, ok := tr.Result("t00007"); !ok || r.Outcome != "weird-7" {
		t.Fatalf("the spooled result keeps its own outcome: %+v %v", r, ok)
	}
}

func firstDiffByte(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// validUTF8 is r with its strings made valid UTF-8, as json.Unmarshal makes them.
func validUTF8(r Result) Result {
	var back Result
	data, _ := json.Marshal(r)
	json.Unmarshal(data, &back)
	back.At = r.At
	return back
}

// TestTrackerEstimateIsShownNotCounted: an estimated total (a counting walk
// ahead of a paced producer) shows in the progress, marked, and never
// makes the run complete; the real total replaces it.
func TestTrackerEstimateIsShownNotCounted(t *testing.T) {
	tr := NewTracker("r", time.Time{})
	tr.Add(Result{Tenant: "a", Outcome: "current"})
	if p := tr.Progress(time.Now()); p.Total != -1 || p.Estimated {
		t.Fatalf("no estimate: %+v", p)
	}
	tr.SetEstimate(1)
	if p := tr.Progress(time.Now()); p.Total != 1 || !p.Estimated || tr.Complete() {
		t.Fatalf("estimate 1, one result: %+v, complete %v", p, tr.Complete())
	}
	tr.SetTotal(2)
	if p := tr.Progress(time.Now()); p.Total != 2 || p.Estimated || tr.Complete() {
		t.Fatalf("total 2: %+v", p)
	}
}
