package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// Tracker collects a run's results, one entry per tenant that says what
// happened to it in the run: when a tenant has several results (a retried,
// duplicated or re-enqueued job), its entry is the latest result, except
// that a later `current` never replaces a `migrated` (the DB was migrated
// in this run; the later job found it done), its `applied` lists every
// migration applied in the run (the union, by version) and its `from` is
// the version before the run's first result. Safe for concurrent use.
type Tracker struct {
	mu       sync.Mutex
	runID    string
	start    time.Time
	byTenant map[string]*entry
	order    []string
	manifest *Manifest
	total    int // known total (manifest), -1 unknown
}

// entry is what the tracker keeps of one tenant's results.
type entry struct {
	latest   Result  // the latest result (by At, then arrival)
	migrated *Result // the latest `migrated` result, if any
	first    Result  // the earliest result (for From)
	applied  map[int64]engine.Applied
	merged   Result
}

func (e *entry) add(r Result) {
	if !r.At.Before(e.latest.At) {
		e.latest = r
	}
	if r.Outcome == engine.OutcomeMigrated && (e.migrated == nil || !r.At.Before(e.migrated.At)) {
		m := r
		e.migrated = &m
	}
	if r.At.Before(e.first.At) {
		e.first = r
	}
	for _, a := range r.Applied {
		if _, ok := e.applied[a.Version]; !ok {
			e.applied[a.Version] = a
		}
	}
	e.merge()
}

func (e *entry) merge() {
	m := e.latest
	if m.Outcome == engine.OutcomeCurrent && e.migrated != nil {
		m = *e.migrated
		m.To = e.latest.To
	}
	if e.first.From != nil {
		m.From = e.first.From
	}
	m.Applied = make([]engine.Applied, 0, len(e.applied))
	for _, a := range e.applied {
		m.Applied = append(m.Applied, a)
	}
	sort.Slice(m.Applied, func(i, j int) bool { return m.Applied[i].Version < m.Applied[j].Version })
	e.merged = m
}

// NewTracker starts tracking runID; start is when the run began (for rates).
func NewTracker(runID string, start time.Time) *Tracker {
	return &Tracker{runID: runID, start: start, byTenant: map[string]*entry{}, total: -1}
}

// Add records a result, merged with the tenant's earlier ones (see Tracker).
func (t *Tracker) Add(r Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byTenant[r.Tenant]
	if !ok {
		e = &entry{latest: r, first: r, applied: map[int64]engine.Applied{}}
		t.byTenant[r.Tenant] = e
		t.order = append(t.order, r.Tenant)
	}
	e.add(r)
}

// SetManifest records the run's manifest; a complete one fixes the total.
func (t *Tracker) SetManifest(m Manifest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.manifest = &m
	if m.Complete {
		t.total = m.Total
	}
	if !m.StartedAt.IsZero() && (t.start.IsZero() || m.StartedAt.Before(t.start)) {
		t.start = m.StartedAt
	}
}

// SetTotal fixes the total when the caller knows it (the producer itself).
func (t *Tracker) SetTotal(n int) {
	t.mu.Lock()
	t.total = n
	t.mu.Unlock()
}

// Manifest returns the last manifest seen, if any.
func (t *Tracker) Manifest() *Manifest {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.manifest == nil {
		return nil
	}
	m := *t.manifest
	return &m
}

// Progress is a snapshot for display.
type Progress struct {
	Done, Total int // Total -1: still walking
	Failed      int // done but not at head
	Elapsed     time.Duration
	Rate        float64 // tenants/s
	ETA         time.Duration
}

// Progress returns the current progress.
func (t *Tracker) Progress(now time.Time) Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := Progress{Done: len(t.byTenant), Total: t.total}
	if !t.start.IsZero() {
		p.Elapsed = now.Sub(t.start)
	}
	for _, e := range t.byTenant {
		if !AtHead(e.merged.Outcome) {
			p.Failed++
		}
	}
	if s := p.Elapsed.Seconds(); s > 0 {
		p.Rate = float64(p.Done) / s
	}
	if p.Total >= 0 && p.Rate > 0 && p.Total > p.Done {
		p.ETA = time.Duration(float64(p.Total-p.Done) / p.Rate * float64(time.Second))
	}
	return p
}

// Complete reports whether the total is known and every tenant reported.
func (t *Tracker) Complete() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total >= 0 && len(t.byTenant) >= t.total
}

// Result returns a tenant's entry: its results in the run, merged.
func (t *Tracker) Result(tenant string) (Result, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byTenant[tenant]
	if !ok {
		return Result{}, false
	}
	return e.merged, true
}

// Report builds the report: one entry per tenant, sorted by tenant.
func (t *Tracker) Report(now time.Time) *Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep := &Report{RunID: t.runID, Databases: make([]Result, 0, len(t.byTenant))}
	tenants := append([]string(nil), t.order...)
	sort.Strings(tenants)
	counts := map[string]int{}
	var first, last time.Time
	for _, tn := range tenants {
		r := t.byTenant[tn].merged
		rep.Databases = append(rep.Databases, r)
		counts[r.Outcome]++
		if first.IsZero() || r.At.Before(first) {
			first = r.At
		}
		if r.At.After(last) {
			last = r.At
		}
	}
	total := t.total
	if total < len(tenants) {
		total = len(tenants)
	}
	start := t.start
	if start.IsZero() {
		start = first
	}
	end := now
	if total == len(tenants) && !last.IsZero() {
		end = last
	}
	rep.Summary = Summary{Total: total, Counts: counts, Pending: total - len(tenants)}
	if !start.IsZero() && end.After(start) {
		rep.Summary.DurationMs = end.Sub(start).Milliseconds()
	}
	return rep
}

// WriteReport writes the report as indented JSON, atomically (temp file +
// rename), so a reader never sees half a report.
func WriteReport(path string, rep *Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".shoal-report-*")
	if err != nil {
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	return nil
}

// PrintSummary writes the summary table and the tenants that did not reach
// head.
func PrintSummary(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "run %s: %d databases in %s\n", rep.RunID, rep.Summary.Total, time.Duration(rep.Summary.DurationMs)*time.Millisecond)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  outcome\tcount\t\n")
	for _, o := range Outcomes {
		if n := rep.Summary.Counts[o]; n > 0 {
			fmt.Fprintf(tw, "  %s\t%d\t\n", o, n)
		}
	}
	if rep.Summary.Pending > 0 {
		fmt.Fprintf(tw, "  (no result yet)\t%d\t\n", rep.Summary.Pending)
	}
	fmt.Fprintf(tw, "  total\t%d\t\n", rep.Summary.Total)
	tw.Flush()
	failed := rep.Failed()
	if len(failed) > 0 {
		fmt.Fprintf(w, "%d database(s) not at head:\n", len(failed))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  TENANT\tOUTCOME\tATTEMPT\tERROR\n")
		for _, r := range failed {
			msg := ""
			if r.Error != nil {
				msg = firstLine(*r.Error)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", r.Tenant, r.Outcome, r.Attempt, msg)
		}
		tw.Flush()
	}
}

// PrintResults writes one line per result (the `results` table).
func PrintResults(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TENANT\tOUTCOME\tFROM\tTO\tAPPLIED\tATTEMPT\tWORKER\tDURATION\tERROR\n")
	for _, r := range rep.Databases {
		msg := ""
		if r.Error != nil {
			msg = firstLine(*r.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Tenant, r.Outcome, ptr(r.From), ptr(r.To),
			len(r.Applied), r.Attempt, r.Worker, time.Duration(r.DurationMs)*time.Millisecond, msg)
	}
	tw.Flush()
}

func ptr(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// ProgressPrinter shows progress: a redrawn line on a terminal, else a
// plain line every Interval.
type ProgressPrinter struct {
	W        io.Writer
	TTY      bool
	Interval time.Duration
	last     time.Time
	lastLine string
	drawn    bool
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Show prints p if it is time to (always on a TTY).
func (pp *ProgressPrinter) Show(p Progress, now time.Time) {
	if !pp.TTY {
		iv := pp.Interval
		if iv <= 0 {
			iv = 5 * time.Second
		}
		if !pp.last.IsZero() && now.Sub(pp.last) < iv {
			return
		}
	}
	pp.last = now
	line := FormatProgress(p)
	pp.lastLine = line
	if pp.TTY {
		fmt.Fprintf(pp.W, "\r\033[K%s", line)
		pp.drawn = true
	} else {
		fmt.Fprintln(pp.W, line)
	}
}

// Force prints p now, unless it is the line just printed.
func (pp *ProgressPrinter) Force(p Progress) {
	if FormatProgress(p) == pp.lastLine {
		return
	}
	pp.last = time.Time{}
	tty := pp.TTY
	pp.Show(p, time.Now())
	pp.TTY = tty
}

// Done ends a redrawn line.
func (pp *ProgressPrinter) Done() {
	if pp.TTY && pp.drawn {
		fmt.Fprintln(pp.W)
		pp.drawn = false
	}
}

// FormatProgress renders "412/1000 done (41%), 37.2/s, ETA 16s, 2 failed".
func FormatProgress(p Progress) string {
	var b strings.Builder
	if p.Total >= 0 {
		pct := 100.0
		if p.Total > 0 {
			pct = float64(p.Done) * 100 / float64(p.Total)
		}
		fmt.Fprintf(&b, "%d/%d done (%.0f%%)", p.Done, p.Total, pct)
	} else {
		fmt.Fprintf(&b, "%d/? done (still scanning)", p.Done)
	}
	fmt.Fprintf(&b, ", %.1f/s", p.Rate)
	if p.ETA > 0 {
		fmt.Fprintf(&b, ", ETA %s", p.ETA.Round(time.Second))
	}
	fmt.Fprintf(&b, ", %d failed", p.Failed)
	return b.String()
}
