package producer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
)

// rollout is a pass's canary wave and halt (Options.Canary, CanaryTenants,
// MaxFailures): it counts the pass's failures from the results ProducePass
// follows, halts the run (fleet.PublishHalt) at MaxFailures or when a
// canary fails, and tells Produce (Options.Halted) to stop publishing.
type rollout struct {
	ctx   context.Context
	js    jetstream.JetStream
	o     Options
	t     *fleet.Tracker
	named map[string]bool // --canary-tenants

	mu       sync.Mutex
	halt     string
	failed   map[string]bool // tenants failed in this pass
	canaries map[string]bool // tenants of the canary wave
	waiting  chan struct{}   // signalled on each result during the canary wave
}

func newRollout(ctx context.Context, js jetstream.JetStream, o Options, t *fleet.Tracker) *rollout {
	ro := &rollout{ctx: ctx, js: js, o: o, t: t, failed: map[string]bool{}, canaries: map[string]bool{},
		waiting: make(chan struct{}, 1)}
	if len(o.CanaryTenants) > 0 {
		ro.named = map[string]bool{}
		for _, tn := range o.CanaryTenants {
			ro.named[tn] = true
		}
	}
	return ro
}

func (ro *rollout) active() bool { return ro.o.MaxFailures > 0 || ro.canary() }
func (ro *rollout) canary() bool { return ro.o.Canary > 0 || len(ro.named) > 0 }

// reason is "" while the run goes on, else why it halted.
func (ro *rollout) reason() string {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.halt
}

// stop halts the run (the first reason wins) and publishes the halt for
// the workers.
func (ro *rollout) stop(reason string, failures int) {
	ro.mu.Lock()
	if ro.halt != "" {
		ro.mu.Unlock()
		return
	}
	ro.halt = reason
	ro.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ro.ctx), 10*time.Second)
	defer cancel()
	if err := fleet.PublishHalt(ctx, ro.js, ro.o.Names, fleet.Halt{RunID: ro.o.RunID, Reason: reason, Failures: failures}); err != nil && ro.o.Logger != nil {
		ro.o.Logger.Warn("cannot publish the run's halt (the producer stops publishing anyway)")
	}
}

func (ro *rollout) onResult(r fleet.Result) {
	select {
	case ro.waiting <- struct{}{}:
	default:
	}
	if !fleet.IsFailure(r.Outcome) {
		return
	}
	ro.mu.Lock()
	ro.failed[r.Tenant] = true
	n := len(ro.failed)
	ro.mu.Unlock()
	if ro.o.MaxFailures > 0 && n >= ro.o.MaxFailures {
		ro.stop(fleet.MaxFailuresReason(n, int64(ro.o.MaxFailures)), n)
	}
}

// canaryWave publishes the canary tenants alone and waits for their
// results; a canary that did not end migrated or current halts the run.
func (ro *rollout) canaryWave(ctx, fctx context.Context, js jetstream.JetStream, o Options, done <-chan error) (*Stats, error, error) {
	c := o
	c.Partial, c.OnDone = true, nil
	taken := 0
	c.Filter = func(tenant string, job bool) bool {
		ro.mu.Lock()
		defer ro.mu.Unlock()
		if ro.named != nil {
			if ro.named[tenant] {
				ro.canaries[tenant] = true
				return true
			}
			return false
		}
		if job && taken < o.Canary {
			taken++
			ro.canaries[tenant] = true
			return true
		}
		return false
	}
	st, err := Produce(ctx, js, c)
	if err != nil {
		return st, err, nil
	}
	ro.mu.Lock()
	if ro.named != nil && len(ro.canaries) < len(ro.named) {
		var missing []string
		for tn := range ro.named {
			if !ro.canaries[tn] {
				missing = append(missing, tn)
			}
		}
		sort.Strings(missing)
		ro.mu.Unlock()
		return st, fmt.Errorf("%w: %d canary tenants named in --canary-tenants are not under --root or do not match --pattern: %s",
			ErrCanaryTenants, len(missing), strings.Join(first(missing, 5), ", ")), nil
	}
	canaries := make([]string, 0, len(ro.canaries))
	for tn := range ro.canaries {
		canaries = append(canaries, tn)
	}
	ro.mu.Unlock()
	sort.Strings(canaries)
	// Wait for every canary's result.
	for {
		pending := 0
		for _, tn := range canaries {
			if _, ok := ro.t.Result(tn); !ok {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		select {
		case <-ro.waiting:
		case <-time.After(time.Second):
		case err := <-done:
			if err == nil {
				err = fctx.Err()
			}
			if err == nil {
				err = errors.New("results ended before every canary reported")
			}
			return st, nil, err
		case <-fctx.Done():
			return st, nil, fctx.Err()
		}
	}
	for _, tn := range canaries {
		r, _ := ro.t.Result(tn)
		if !fleet.AtHead(r.Outcome) {
			msg := r.Outcome
			if r.Error != nil {
				msg += ": " + firstLine(*r.Error)
			}
			ro.stop(fmt.Sprintf("canary %s failed (%s)", tn, msg), 1)
			break
		}
	}
	st.Canaries = canaries
	return st, nil, nil
}

// restOptions are the options of the wave after the canaries: every other
// tenant; the canary wave's stats are added to the final ones.
func (ro *rollout) restOptions(o Options, wave *Stats) Options {
	canaries := map[string]bool{}
	for _, tn := range wave.Canaries {
		canaries[tn] = true
	}
	o.Filter = func(tenant string, _ bool) bool { return !canaries[tenant] }
	o.TotalBase = wave.Expected()
	prev := o.OnDone
	o.OnDone = func(st *Stats) {
		st.Jobs += wave.Jobs
		st.Published += wave.Published
		st.Duplicates += wave.Duplicates
		st.Current += wave.Current
		st.Halted += wave.Halted
		st.Canaries = wave.Canaries
		if prev != nil {
			prev(st)
		}
	}
	return o
}

// ErrCanaryTenants: --canary-tenants names tenants the walk did not find.
var ErrCanaryTenants = errors.New("canary tenants not found")

func first(l []string, n int) []string {
	if len(l) > n {
		return append(l[:n:n], fmt.Sprintf("and %d more", len(l)-n))
	}
	return l
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
