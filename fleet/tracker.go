package fleet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// Tracker collects a run's results, one entry per tenant that says what
// happened to it in the run: when a tenant has several results (a retried,
// duplicated or re-enqueued job), its entry is the latest result, except
// that a later `current` never replaces a `migrated` (the DB was migrated
// in this run; the later job found it done), its `applied` lists every
// migration applied in the run (the union, by version) and its `from` is
// the lowest version any of its results started from: the version before
// the run, whatever order the results were stamped in. Safe for concurrent use.
//
// Memory stays flat in the number of tenants: the results themselves go to
// a spool file (an unlinked temporary file, in memory only if none can be
// created) as they arrive, and the tracker keeps per tenant only where its
// results are, its merged outcome and times, plus counters. Entries are
// rebuilt from the spool when asked for (Result, Report, StreamReport).
type Tracker struct {
	mu       sync.Mutex
	runID    string
	start    time.Time
	tenants  tenantIndex
	extra    map[uint32]*extra // entries of tenants with more than one result (rare), by number
	outcomes []string          // outcome codes of the entries: outcomes[code-1]
	codes    map[string]uint16
	manifest *Manifest
	total    int // known total (manifest), -1 unknown
	estimate int // SetEstimate, while the total is unknown
	counts   map[string]int
	failed   int // tenants whose merged outcome is not at head
	spool    spool
}

// entry is what the tracker keeps of one tenant (24 bytes, in a
// tenantIndex): its name, where its first result is and enough to know its
// merged outcome and time without reading it. Outcomes are codes into
// Tracker.outcomes. A tenant with more results (a retried or duplicated
// job: rare) also has an extra.
type entry struct {
	first    packedRef // the first result
	latestAt int64     // At of the latest result (by At, then arrival)
	name     uint32    // in tenantIndex.names
	latestO  uint16
	migrO    uint16 // the latest `migrated` (or `adopted`) result's outcome; 0: none
}

// packedRef is a ref in 8 bytes: the offset in its 40 low bits, the length
// in the 24 high bits (all ones: a result in memory, at mem[offset]).
type packedRef uint64

const (
	refOffBits = 40
	refMaxLen  = 1<<24 - 1 // a longer result is kept in memory
	refInMem   = refMaxLen
)

func pack(r ref) packedRef {
	n := uint64(refInMem)
	if r.n >= 0 {
		n = uint64(r.n)
	}
	return packedRef(n<<refOffBits | uint64(r.off))
}

func (p packedRef) ref() ref {
	r := ref{off: int64(p & (1<<refOffBits - 1)), n: int32(p >> refOffBits)}
	if r.n == refInMem {
		r.n = -1
	}
	return r
}

// extra is the rest of a tenant with several results.
type extra struct {
	more   []ref // the later results, in arrival order
	migrAt int64 // At of the latest `migrated` (or `adopted`) result, if migrO != 0
}

// outcome is the merged entry's outcome code, at its At (see Tracker); x
// is the tenant's extra, nil with one result (its `migrated`, if any, is
// then the latest).
func (e *entry) outcome(current uint16, x *extra) (uint16, int64) {
	if e.latestO == current && e.migrO != 0 {
		if x != nil {
			return e.migrO, x.migrAt
		}
		return e.migrO, e.latestAt
	}
	return e.latestO, e.latestAt
}

// nanos is t as Unix nanoseconds, clamped (the zero time is the minimum).
func nanos(t time.Time) int64 {
	switch {
	case t.IsZero() || t.Year() < 1678:
		return math.MinInt64
	case t.Year() > 2261:
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// merger merges one tenant's results in arrival order (the rules of
// Tracker), from the full results.
type merger struct {
	latest   Result  // the latest result (by At, then arrival)
	migrated *Result // the latest `migrated` result, if any
	from     *int64  // the lowest version a result started from (the version before the run)
	applied  map[int64]engine.Applied
}

func newMerger(r Result) *merger {
	m := &merger{latest: r, applied: map[int64]engine.Applied{}}
	m.add(r)
	return m
}

func (e *merger) add(r Result) {
	if !r.At.Before(e.latest.At) {
		e.latest = r
	}
	if changedDB(r.Outcome) && (e.migrated == nil || !r.At.Before(e.migrated.At)) {
		m := r
		e.migrated = &m
	}
	// Not the earliest result's From: two workers of duplicate jobs stamp
	// their results in either order, and the one that found the DB current
	// (From = head) may stamp first. Versions only go up in a run.
	if r.From != nil && (e.from == nil || *r.From < *e.from) {
		v := *r.From
		e.from = &v
	}
	for _, a := range r.Applied {
		if _, ok := e.applied[a.Version]; !ok {
			e.applied[a.Version] = a
		}
	}
}

func (e *merger) merged() Result {
	m := e.latest
	if m.Outcome == engine.OutcomeCurrent && e.migrated != nil {
		m = *e.migrated
		m.To = e.latest.To
	}
	if e.from != nil {
		m.From = e.from
	}
	m.Applied = make([]engine.Applied, 0, len(e.applied))
	for _, a := range e.applied {
		m.Applied = append(m.Applied, a)
	}
	sort.Slice(m.Applied, func(i, j int) bool { return m.Applied[i].Version < m.Applied[j].Version })
	return m
}

// NewTracker starts tracking runID; start is when the run began (for rates).
func NewTracker(runID string, start time.Time) *Tracker {
	t := &Tracker{runID: runID, start: start, tenants: newTenantIndex(), extra: map[uint32]*extra{}, total: -1,
		counts: map[string]int{}, codes: map[string]uint16{}}
	for _, o := range Outcomes {
		t.code(o)
	}
	return t
}

// Close releases the spool. The tracker must not be used afterwards; a
// tracker never closed releases it when the process exits.
func (t *Tracker) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.spool.close()
}

// Add records a result, merged with the tenant's earlier ones (see Tracker).
func (t *Tracker) Add(r Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	loc := t.spool.put(r)
	outcome := t.code(r.Outcome)
	at := nanos(r.At)
	i, ok := t.tenants.find(r.Tenant)
	if !ok {
		e := entry{first: pack(loc), latestAt: at, latestO: outcome}
		if changedDB(r.Outcome) {
			e.migrO = outcome // its At is latestAt (see entry.outcome)
		}
		t.tenants.add(r.Tenant, e)
		t.count(&e, nil, 1)
		return
	}
	e := t.tenants.entry(i)
	x := t.extra[i]
	t.count(e, x, -1)
	if x == nil {
		x = &extra{migrAt: math.MinInt64}
		if e.migrO != 0 {
			x.migrAt = e.latestAt // the only result so far was it
		}
		t.extra[i] = x
	}
	x.more = append(x.more, loc)
	if at >= e.latestAt {
		e.latestAt, e.latestO = at, outcome
	}
	if changedDB(r.Outcome) && (e.migrO == 0 || at >= x.migrAt) {
		x.migrAt, e.migrO = at, outcome
	}
	t.count(e, x, 1)
}

// maxOutcomes bounds the distinct outcome strings a tracker codes: results
// read from a stream are input, and an outcome beyond the bound is counted
// as otherOutcome.
const maxOutcomes = 1 << 10

const otherOutcome = "(other)"

// code returns the outcome's code (see entry).
func (t *Tracker) code(o string) uint16 {
	if c, ok := t.codes[o]; ok {
		return c
	}
	if len(t.outcomes) >= maxOutcomes-1 && o != otherOutcome {
		return t.code(otherOutcome)
	}
	t.outcomes = append(t.outcomes, o)
	c := uint16(len(t.outcomes))
	t.codes[o] = c
	return c
}

// outcomeOf is e's merged outcome and its At (x: the tenant's extra).
func (t *Tracker) outcomeOf(e *entry, x *extra) (string, int64) {
	c, at := e.outcome(t.codes[engine.OutcomeCurrent], x)
	return t.outcomes[c-1], at
}

func (t *Tracker) count(e *entry, x *extra, d int) {
	o, _ := t.outcomeOf(e, x)
	t.counts[o] += d
	if t.counts[o] == 0 {
		delete(t.counts, o)
	}
	if !AtHead(o) {
		t.failed += d
	}
}

// merged rebuilds entry i from the spool. Called with t.mu held.
func (t *Tracker) merged(i uint32) (Result, error) {
	r, err := t.spool.get(t.tenants.entry(i).first.ref())
	if err != nil {
		return Result{}, err
	}
	m := newMerger(r)
	var more []ref
	if x := t.extra[i]; x != nil {
		more = x.more
	}
	for _, at := range more {
		r, err := t.spool.get(at)
		if err != nil {
			return Result{}, err
		}
		m.add(r)
	}
	return m.merged(), nil
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

// SetEstimate gives the progress a total while the real one is unknown
// (a walk that only counted the tenants, ahead of the producer's): shown,
// never used to decide that the run is complete.
func (t *Tracker) SetEstimate(n int) {
	t.mu.Lock()
	t.estimate = n
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
	Done, Total int  // Total -1: still walking
	Estimated   bool // Total is SetEstimate's, the walk still going
	Failed      int  // done but not at head
	Elapsed     time.Duration
	Rate        float64 // tenants/s
	ETA         time.Duration
}

// Progress returns the current progress, from counters (O(1)).
func (t *Tracker) Progress(now time.Time) Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := Progress{Done: t.tenants.n, Total: t.total, Failed: t.failed}
	if p.Total < 0 && t.estimate > 0 {
		p.Total, p.Estimated = max(t.estimate, p.Done), true
	}
	if !t.start.IsZero() {
		p.Elapsed = now.Sub(t.start)
	}
	if s := p.Elapsed.Seconds(); s > 0 {
		p.Rate = float64(p.Done) / s
	}
	if p.Total >= 0 && p.Rate > 0 && p.Total > p.Done {
		p.ETA = time.Duration(float64(p.Total-p.Done) / p.Rate * float64(time.Second))
	}
	return p
}

// Counts returns how many tenants have each (merged) outcome so far.
func (t *Tracker) Counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.counts))
	for k, v := range t.counts {
		out[k] = v
	}
	return out
}

// Complete reports whether the total is known and every tenant reported.
func (t *Tracker) Complete() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total >= 0 && t.tenants.n >= t.total
}

// Has reports whether a tenant has a result, without reading it.
func (t *Tracker) Has(tenant string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.tenants.find(tenant)
	return ok
}

// Result returns a tenant's entry: its results in the run, merged.
func (t *Tracker) Result(tenant string) (Result, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.tenants.find(tenant)
	if !ok {
		return Result{}, false
	}
	r, err := t.merged(i)
	if err != nil {
		return Result{}, false
	}
	return r, true
}

// Report builds the whole report in memory: one entry per tenant, sorted
// by tenant. For a fleet of any size, use StreamReport.
func (t *Tracker) Report(now time.Time) *Report {
	rep := t.StreamReport(now)
	dbs := make([]Result, 0, rep.Len())
	if err := rep.Each(func(r Result) error { dbs = append(dbs, r); return nil }); err != nil {
		dbs = append(dbs, Result{}) // unreachable with the in-memory spool
	}
	rep.Databases, rep.src, rep.order, rep.failed = dbs, nil, nil, nil
	return rep
}

// StreamReport returns the report with its summary and the tenants that
// did not end at head; its databases are read from the tracker one at a
// time when written (Report.WriteJSON, Report.Each), never all held.
func (t *Tracker) StreamReport(now time.Time) *Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.tenants.n
	order := make([]uint32, n)
	counts := map[string]int{}
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	var failed []uint32
	for i := range order {
		order[i] = uint32(i)
		o, at := t.outcomeOf(t.tenants.entry(uint32(i)), t.extra[uint32(i)])
		counts[o]++
		if !AtHead(o) {
			failed = append(failed, uint32(i))
		}
		first, last = min(first, at), max(last, at)
	}
	byName := func(a, b uint32) int { return strings.Compare(t.tenants.name(a), t.tenants.name(b)) }
	slices.SortFunc(order, byName)
	slices.SortFunc(failed, byName)
	rep := &Report{RunID: t.runID, src: t, order: order, failed: []Result{}}
	for _, i := range failed {
		r, err := t.merged(i)
		if err != nil {
			r = Result{RunID: t.runID, Tenant: t.tenants.name(i), Outcome: engine.OutcomeFailed, Error: String(err.Error())}
		}
		rep.failed = append(rep.failed, r)
	}
	total := max(t.total, n)
	start := t.start
	if start.IsZero() && n > 0 {
		start = fromNanos(first)
	}
	end := now
	if total == n && n > 0 && last != math.MinInt64 {
		end = fromNanos(last)
	}
	rep.Summary = Summary{Total: total, Counts: counts, Pending: total - n}
	if !start.IsZero() && end.After(start) {
		rep.Summary.DurationMs = end.Sub(start).Milliseconds()
	}
	return rep
}

// entryOf returns entry i's merged result (for Report.Each).
func (t *Tracker) entryOf(i uint32) (Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.merged(i)
}

// entryJSON appends entry i's report entry to dst: for a tenant with one
// spooled result, its bytes as spooled; otherwise its merged result, encoded.
func (t *Tracker) entryJSON(i uint32, dst []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.extra[i] == nil {
		if b, ok, err := t.spool.raw(t.tenants.entry(i).first.ref(), dst); ok || err != nil {
			return b, err
		}
	}
	r, err := t.merged(i)
	if err != nil {
		return dst, err
	}
	return appendEntry(dst, &r)
}

// spool holds a tracker's results: the first spoolAfter in memory, the
// others appended to an unlinked temporary file, read back by offset: each
// as the JSON of its report entry, its applied list normalised as merging
// does (so a tenant's only result is its entry, byte for byte). Without a temporary
// directory it keeps them in memory.
type spool struct {
	f      *os.File
	w      *bufio.Writer
	off    int64
	failed bool // no temporary file: mem
	mem    []Result
	buf    []byte // read buffer of get
	enc    []byte // encoding buffer of put
}

// ref locates one result: n bytes at off in the file, or mem[off] (n < 0).
type ref struct {
	off int64
	n   int32
}

func (s *spool) open() {
	if s.f != nil || s.failed {
		return
	}
	f, err := os.CreateTemp("", ".shoal-results-*")
	if err != nil {
		s.failed = true
		return
	}
	os.Remove(f.Name()) // unlinked: gone with the process, whatever happens
	s.f, s.w = f, bufio.NewWriterSize(f, 64<<10)
}

// spoolAfter is how many results a tracker keeps in memory before it
// spools to a file: small runs (and the worker's sweeps) never open one.
const spoolAfter = 1024

func (s *spool) put(r Result) ref {
	if s.f == nil && len(s.mem) < spoolAfter {
		s.mem = append(s.mem, r)
		return ref{off: int64(len(s.mem) - 1), n: -1}
	}
	s.open()
	if s.f != nil {
		// The entry as the report writes it (see Tracker.entryJSON).
		r.Applied = normalApplied(r.Applied)
		data, err := appendEntry(s.enc[:0], &r)
		s.enc = data
		if err == nil && len(data) < refMaxLen && s.off+int64(len(data)) < 1<<refOffBits {
			if _, err := s.w.Write(data); err == nil {
				at := ref{off: s.off, n: int32(len(data))}
				s.off += int64(len(data))
				return at
			}
		}
		// A write error (disk full): keep this one in memory.
	}
	s.mem = append(s.mem, r)
	return ref{off: int64(len(s.mem) - 1), n: -1}
}

// raw returns the bytes of a spooled result (in dst's array), as the
// report writes it; ok false for one held in memory.
func (s *spool) raw(at ref, dst []byte) (data []byte, ok bool, err error) {
	if at.n < 0 {
		return dst, false, nil
	}
	b, err := s.read(at, dst)
	return b, err == nil, err
}

func (s *spool) get(at ref) (Result, error) {
	if at.n < 0 {
		return s.mem[at.off], nil
	}
	b, err := s.read(at, s.buf)
	if err != nil {
		return Result{}, err
	}
	s.buf = b
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("results spool: %w", err)
	}
	return r, nil
}

// read reads the n bytes of a spooled result into dst's array (grown if need be).
func (s *spool) read(at ref, dst []byte) ([]byte, error) {
	if s.f == nil {
		return nil, fmt.Errorf("results spool: closed")
	}
	if s.w.Buffered() > 0 {
		if err := s.w.Flush(); err != nil {
			return nil, fmt.Errorf("results spool: %w", err)
		}
	}
	if cap(dst) < int(at.n) {
		dst = make([]byte, at.n)
	}
	b := dst[:at.n]
	if _, err := s.f.ReadAt(b, at.off); err != nil {
		return nil, fmt.Errorf("results spool: %w", err)
	}
	return b, nil
}

func (s *spool) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.w, s.failed = nil, nil, true
	return err
}

// changedDB reports the outcomes that say what a run did to a DB and that a
// later `current` of the same run never replaces: migrated, and adopted
// (another tool's history taken over, then migrated).
func changedDB(outcome string) bool {
	return outcome == engine.OutcomeMigrated || outcome == engine.OutcomeAdopted
}
