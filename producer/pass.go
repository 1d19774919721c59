package producer

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shoal-dev/shoal/fleet"
)

// ProducePass runs one pass of a run: it publishes like Produce and follows
// the run's results into t, counting exactly the results of the jobs this
// pass published or found already published (and the current results the
// producer made), never those of an earlier pass of the same run id. It
// returns once every one of them is in t, or when followCtx ends (t then
// holds what arrived). fo's Tick, TickEvery and OnResult are used; the other
// fields are set here.
//
// perr is the producer's error (nothing more is followed then), ferr an
// error reading the results.
func ProducePass(ctx, followCtx context.Context, js jetstream.JetStream, o Options, t *fleet.Tracker, fo fleet.FollowOptions) (st *Stats, perr, ferr error) {
	var pass *fleet.Pass // nil: every result of the run id is this pass's (SolePass)
	if !o.SolePass {
		pass = newPass(ctx, js, o, t)
	}
	if o.OnCurrent == nil {
		// The producer's own results go straight into t; they are still
		// published (for other readers), marked as this pass's, and the
		// follower skips them: a re-check of a fleet at head holds no job
		// id per tenant and reads nothing back into t.
		o.OnCurrent, o.PassID = t.Add, fleet.NewPassID()
		fo.SkipPass = o.PassID
	}
	if pass != nil {
		prev := o.OnExpect
		o.OnExpect = func(id string) {
			pass.Expect(id)
			if prev != nil {
				prev(id)
			}
		}
	}
	ro := newRollout(ctx, js, o, t)
	if ro.active() {
		prevResult := fo.OnResult
		fo.OnResult = func(r fleet.Result) {
			ro.onResult(r)
			if prevResult != nil {
				prevResult(r)
			}
		}
		o.Halted = ro.reason
	}
	fo.Follow, fo.UntilComplete, fo.NoManifest, fo.Filter = true, true, true, nil
	if pass != nil {
		fo.Filter = pass.Offer
	}
	fctx, stop := context.WithCancel(followCtx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- fleet.Follow(fctx, js, o.Names, o.RunID, t, fo) }()
	if ro.canary() {
		st, perr, ferr = ro.canaryWave(ctx, fctx, js, o, done)
		if perr != nil || ferr != nil {
			stop()
			if ferr == nil {
				<-done
			}
			return st, perr, ferr
		}
		o = ro.restOptions(o, st)
	}
	st, perr = Produce(ctx, js, o)
	if perr != nil {
		stop()
		<-done
		return st, perr, nil
	}
	if pass != nil {
		pass.Seal()
	}
	t.SetTotal(st.Expected())
	if t.Complete() {
		// Every result is in already (the producer's own, handed over
		// through OnCurrent, completed the run): Follow would only see
		// it at its next tick.
		stop()
	}
	ferr = <-done
	if ferr != nil && (fctx.Err() != nil || errors.Is(ferr, context.Canceled)) {
		ferr = nil // followCtx ended: the caller reports what is missing
	}
	st.HaltReason = ro.reason()
	return st, nil, ferr
}

// newPass is the pass that selects this pass's results into t.
func newPass(ctx context.Context, js jetstream.JetStream, o Options, t *fleet.Tracker) *fleet.Pass {
	pass := fleet.NewPass(t)
	// Results older than the duplicate window (plus slack for clocks) cannot
	// be of a job this pass finds already published.
	jobs := o.Names.JobsStream
	if jobs == "" {
		jobs = fleet.DefaultJobsStream
	}
	if s, err := js.Stream(ctx, jobs); err == nil {
		if d := s.CachedInfo().Config.Duplicates; d > 0 {
			pass.Since = time.Now().Add(-d - 10*time.Minute)
		}
	}
	return pass
}
