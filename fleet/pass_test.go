package fleet

import (
	"testing"
	"time"
)

// TestPassHoldsOnlyRecentEarlyResults: a result read before its job is
// expected is held (and added when it is), unless it is older than Since;
// Seal drops what was held for other jobs.
func TestPassHoldsOnlyRecentEarlyResults(t *testing.T) {
	now := time.Now()
	tr := NewTracker("r", now)
	p := NewPass(tr)
	p.Since = now.Add(-time.Hour)
	if p.Offer(Result{Tenant: "a", JobID: "ja", At: now}) || p.Offer(Result{Tenant: "old", JobID: "jo", At: now.Add(-2 * time.Hour)}) {
		t.Fatal("unexpected results accepted")
	}
	p.Expect("ja")
	p.Expect("jo")
	if _, ok := tr.Result("a"); !ok {
		t.Fatal("held result not added on Expect")
	}
	if _, ok := tr.Result("old"); ok {
		t.Fatal("a result older than Since was held")
	}
	if !p.Offer(Result{Tenant: "old", JobID: "jo", At: now}) {
		t.Fatal("an expected job's result refused")
	}
	p.Offer(Result{Tenant: "b", JobID: "jb", At: now})
	p.Seal()
	p.Expect("jb")
	if _, ok := tr.Result("b"); ok || p.Expected() != 3 {
		t.Fatal("Seal kept a held result")
	}
}
