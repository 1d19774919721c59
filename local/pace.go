package local

import (
	"context"
	"sync"

	"github.com/shoal-dev/shoal/fleet"
)

// runAhead is how many jobs `shoal run`'s producer publishes ahead of the
// results. Without a bound it published all of a large fleet's jobs in the
// first seconds, and the embedded server kept the cache of every block of
// the jobs stream written in the last 10 s: 28 MB of buffers at the peak
// of a 100,000-tenant run, against one 4 MB block for a queue this long
// (about 0.3 KB a job). Four workers never wait for it.
var runAhead = 4096

// pacer holds the producer back while ahead jobs are published and not
// yet reported. Every result read counts (a retried job's attempts too:
// that only lets the producer on sooner). Safe for concurrent use.
type pacer struct {
	ahead     int
	firstWait func() // called once, the first time the producer is held
	waited    sync.Once

	mu                 sync.Mutex
	published, results int
	most               int // the most jobs outstanding seen
	wake               chan struct{}
}

func newPacer(ahead int) *pacer {
	return &pacer{ahead: ahead, wake: make(chan struct{}, 1)}
}

// beforeJob waits until another job may be published (producer.Options.BeforeJob).
func (p *pacer) beforeJob(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.published-p.results < p.ahead {
			p.published++
			p.most = max(p.most, p.published-p.results)
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		if p.firstWait != nil {
			p.waited.Do(p.firstWait)
		}
		select {
		case <-p.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// result counts a result read (fleet.FollowOptions.OnResult).
func (p *pacer) result(fleet.Result) {
	p.mu.Lock()
	p.results++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// mostOutstanding is the most jobs that were published and not reported at once.
func (p *pacer) mostOutstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.most
}
