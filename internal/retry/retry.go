// Package retry holds shoal's one backoff: a delay that doubles after each
// failed attempt up to a cap, and a sleep that ends early with its context.
package retry

import (
	"context"
	"time"
)

// Backoff is the delay between attempts of one operation: Initial, then
// twice the previous delay, never above Max. The zero Backoff is not
// useful; set both fields. Not safe for concurrent use.
type Backoff struct {
	Initial, Max time.Duration
	next         time.Duration
}

// Next returns the delay before the next attempt and doubles the one
// after it (at most Max).
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = min(b.Initial, b.Max)
	}
	d := b.next
	b.next = min(2*d, b.Max)
	return d
}

// Reset starts the delays again from Initial (after a success).
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps the next delay (see Next); it returns ctx.Err() if ctx ends
// first, else nil.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep waits d, or until ctx ends: then it returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Delay is the delay before attempt n+1 of a Backoff{initial, max}, that is
// the n-th delay (n >= 1): initial doubled n-1 times, at most max.
func Delay(initial, max time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
