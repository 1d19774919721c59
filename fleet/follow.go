package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FollowOptions tune Follow.
type FollowOptions struct {
	// Follow keeps reading new results until ctx ends or, with
	// UntilComplete, until every tenant of the run reported. Without it,
	// Follow returns once the results stored so far are read.
	Follow        bool
	UntilComplete bool
	// OnResult is called for each result, in stream order.
	OnResult func(Result)
	// Filter, when set, keeps only the results it accepts (Pass.Offer):
	// the others are neither added to the tracker nor given to OnResult.
	Filter func(Result) bool
	// Tick is called about every TickEvery while following.
	Tick      func()
	TickEvery time.Duration
	// Manifest skips reading the manifest (the caller sets the total).
	NoManifest bool
	// SkipPass, the id of the caller's pass, skips every result a
	// producer made itself (marked with PassHeader): the caller has its
	// own already, and another pass's are never this pass's (they are not
	// even held as a job's early result: no job has them).
	SkipPass string
}

// PassHeader marks the results a producer made itself (`current`,
// `skipped`) with the id of its pass (producer.Options.PassID).
const PassHeader = "Shoal-Pass"

// NewPassID returns a new random pass id.
func NewPassID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Follow reads the results of runID from the results stream into t with a
// deliver-all ordered consumer on <results>.<run_id>, and the run's
// manifest (for the total) from <results>.<run_id>.manifest.
func Follow(ctx context.Context, js jetstream.JetStream, names Names, runID string, t *Tracker, o FollowOptions) error {
	names = names.withDefaults()
	subj := names.ResultSubject(runID)
	stream, err := js.Stream(ctx, names.ResultsStream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("no results stream %s yet: run `shoal nats setup` or start a producer/worker first", names.ResultsStream)
		}
		return explain(err, "")
	}
	readManifest := func() { followManifest(ctx, stream, names, runID, t, o) }
	readManifest()

	// How many results are stored now: without Follow, read that many.
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return explain(err, "")
	}
	stored := info.State.Subjects[subj]
	if !o.Follow && stored == 0 {
		return nil
	}
	if o.Follow && o.UntilComplete && t.Complete() && stored == 0 {
		return nil
	}

	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return explain(fmt.Errorf("cannot read results of run %s: %w", runID, err), "")
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return explain(fmt.Errorf("cannot read results of run %s: %w", runID, err), "")
	}
	defer iter.Stop()

	type item struct {
		r       Result
		skip    bool // SkipPass
		pending uint64
		err     error
	}
	ch := make(chan item, 256)
	// done stops the reader when Follow returns before ctx ends (all stored
	// results read, or the run complete) while it waits to hand on more.
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(ch)
		for {
			msg, err := iter.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				select {
				case ch <- item{err: err}:
				case <-ctx.Done():
					return
				case <-done:
					return
				}
				// Back off while the connection recovers.
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					return
				case <-done:
					return
				}
				continue
			}
			var it item
			if o.SkipPass != "" && msg.Headers().Get(PassHeader) != "" {
				it.skip = true
			} else if err := json.Unmarshal(msg.Data(), &it.r); err != nil {
				it.r = Result{}
			}
			if md, err := msg.Metadata(); err == nil {
				it.pending = md.NumPending
			}
			select {
			case ch <- it:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()

	every := o.TickEvery
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var read uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case it, ok := <-ch:
			if !ok {
				return nil
			}
			if it.err != nil {
				continue // transient (reconnect); the ordered consumer recovers
			}
			read++
			if !it.skip && it.r.Tenant != "" && (o.Filter == nil || o.Filter(it.r)) {
				t.Add(it.r)
				if o.OnResult != nil {
					o.OnResult(it.r)
				}
			}
			if !o.Follow && (it.pending == 0 || read >= stored) {
				return nil
			}
			if o.Follow && o.UntilComplete && t.Complete() {
				return nil
			}
		case <-tick.C:
			readManifest()
			if o.Tick != nil {
				o.Tick()
			}
			if o.Follow && o.UntilComplete && t.Complete() {
				return nil
			}
		}
	}
}

// followManifest reads the run's manifest (for the total) into t, unless
// o.NoManifest or t already has the complete one.
func followManifest(ctx context.Context, stream jetstream.Stream, names Names, runID string, t *Tracker, o FollowOptions) {
	if o.NoManifest {
		return
	}
	if m := t.Manifest(); m != nil && m.Complete {
		return
	}
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := stream.GetLastMsgForSubject(mctx, names.ManifestSubject(runID))
	if err != nil {
		return
	}
	var m Manifest
	if json.Unmarshal(raw.Data, &m) == nil {
		t.SetManifest(m)
	}
}
