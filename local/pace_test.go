package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"github.com/shoal-dev/shoal/fleet/fleettest"
)

// TestPacerHoldsTheProducer: at most `ahead` jobs published and not
// reported; a result lets one more go; the wait ends with its context.
func TestPacerHoldsTheProducer(t *testing.T) {
	p := newPacer(2)
	held := 0
	p.firstWait = func() { held++ }
	ctx := context.Background()
	for range 2 {
		if err := p.beforeJob(ctx); err != nil {
			t.Fatal(err)
		}
	}
	third := make(chan error, 1)
	go func() { third <- p.beforeJob(ctx) }()
	select {
	case err := <-third:
		t.Fatalf("a third job went ahead of the results (%v)", err)
	case <-time.After(50 * time.Millisecond): // it must still be waiting; a late pass is caught below
	}
	p.result(fleet.Result{})
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	if p.mostOutstanding() != 2 || held != 1 {
		t.Fatalf("most outstanding %d, want 2; first wait told %d times, want 1", p.mostOutstanding(), held)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.beforeJob(cctx); !errors.Is(err, context.Canceled) || held != 1 {
		t.Fatalf("waiting past its context: %v (first wait told %d times)", err, held)
	}
}

// TestRunPacedToTheResults: a run whose producer may be only 3 jobs ahead
// of the results migrates all 40 tenants (no job waits for a result that
// waits for it).
func TestRunPacedToTheResults(t *testing.T) {
	prev := runAhead
	runAhead = 3
	defer func() { runAhead = prev }()
	e := fleettest.Engine(t)
	root := t.TempDir()
	for i := range 40 {
		os.MkdirAll(filepath.Join(root, fmt.Sprintf("t%02d", i)), 0o755)
		os.WriteFile(filepath.Join(root, fmt.Sprintf("t%02d", i), "app.db"), nil, 0o644)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last fleet.Progress
	rep, err := Run(ctx, Options{Engine: e, Root: root, Workers: 2, NoBackup: true,
		Progress: func(tr *fleet.Tracker) { last = tr.Progress(time.Now()) }})
	if err != nil || rep.Summary.Total != 40 || rep.Summary.Counts["migrated"] != 40 {
		t.Fatalf("paced run: %v %+v", err, rep.Summary)
	}
	if last.Total != 40 || last.Estimated {
		t.Fatalf("final progress %+v", last)
	}
}
