package fleet

import (
	"encoding/hex"
	"sync"
	"time"
)

// Pass selects, among the results stored under a run id, those of one pass:
// the jobs (and producer-made results) one producer invocation published or
// found already published. A run id names a pass; the same id used again
// later (a re-check scheduled with a fixed id) is a new pass, and the earlier
// pass's results must not count as this one's.
//
// Results may be read before the producer has said it expects their job
// (a job found already published, whose result is already stored): Offer
// keeps those aside until Expect names them, or Seal says no more will be.
// Safe for concurrent use.
type Pass struct {
	// Since: results older than this cannot belong to the pass (a job found
	// already published was published within the jobs stream's duplicate
	// window, and its result is newer than that): they are not held, which
	// bounds memory when a run id has had many passes. Zero holds all.
	Since time.Time

	mu     sync.Mutex
	t      *Tracker
	want   map[[16]byte]struct{} // the producer's job ids, as their 16 bytes
	other  map[string]struct{}   // any other id
	early  map[string][]Result
	sealed bool
}

// NewPass feeds the results of the pass's jobs into t.
func NewPass(t *Tracker) *Pass {
	return &Pass{t: t, want: map[[16]byte]struct{}{}, other: map[string]struct{}{}, early: map[string][]Result{}}
}

// hexID is a job id as the 16 bytes its 32 hex digits spell (the
// producer's ids: a pass of 100,000 jobs holds them all), ok false for
// any other id.
func hexID(id string) (k [16]byte, ok bool) {
	if len(id) != 32 {
		return k, false
	}
	if n, err := hex.Decode(k[:], []byte(id)); err != nil || n != 16 || hex.EncodeToString(k[:]) != id {
		return k, false
	}
	return k, true
}

func (p *Pass) add(id string) {
	if k, ok := hexID(id); ok {
		p.want[k] = struct{}{}
	} else {
		p.other[id] = struct{}{}
	}
}

func (p *Pass) wants(id string) bool {
	if k, ok := hexID(id); ok {
		_, in := p.want[k]
		return in
	}
	_, in := p.other[id]
	return in
}

// Expect says the pass waits for the result of jobID (call it before the
// job is published). Results of it read earlier are added now.
func (p *Pass) Expect(jobID string) {
	p.mu.Lock()
	p.add(jobID)
	held := p.early[jobID]
	delete(p.early, jobID)
	p.mu.Unlock()
	for _, r := range held {
		p.t.Add(r)
	}
}

// Offer reports whether r belongs to the pass (then the caller adds it to
// the tracker); a result of a job not expected (yet) is held until Expect
// or Seal. Use it as FollowOptions.Filter.
func (p *Pass) Offer(r Result) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.JobID != "" {
		if p.wants(r.JobID) {
			return true
		}
	}
	if !p.sealed && r.JobID != "" && !r.At.Before(p.Since) {
		p.early[r.JobID] = append(p.early[r.JobID], r)
	}
	return false
}

// Seal says every job of the pass is known: results held for other jobs
// (earlier passes of the run id) are dropped.
func (p *Pass) Seal() {
	p.mu.Lock()
	p.sealed = true
	p.early = map[string][]Result{}
	p.mu.Unlock()
}

// Expected is how many jobs the pass waits for.
func (p *Pass) Expected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.want) + len(p.other)
}
