package main

import (
	"runtime/debug"
	"testing"
)

// TestSoftMemoryLimit: the one-shot fleet commands set a soft memory limit,
// unless GOMEMLIMIT is set (the operator's word wins).
func TestSoftMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	t.Setenv("GOMEMLIMIT", "")
	softMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != oneShotMemoryLimit {
		t.Fatalf("limit %d, want %d", got, oneShotMemoryLimit)
	}
	debug.SetMemoryLimit(prev)
	t.Setenv("GOMEMLIMIT", "1GiB")
	softMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Fatalf("GOMEMLIMIT set, limit changed to %d", got)
	}
}
