package main

import (
	"runtime/debug"
	"testing"
)

// TestSoftMemoryLimit: the one-shot fleet commands set a soft memory limit
// and a lower GC target, unless GOMEMLIMIT and GOGC are set (the
// operator's word wins).
func TestSoftMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	prevGC := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prevGC)
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	softMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != oneShotMemoryLimit {
		t.Fatalf("limit %d, want %d", got, oneShotMemoryLimit)
	}
	if got := debug.SetGCPercent(100); got != oneShotGCPercent {
		t.Fatalf("GC percent %d, want %d", got, oneShotGCPercent)
	}
	debug.SetMemoryLimit(prev)
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOGC", "100")
	softMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Fatalf("GOMEMLIMIT set, limit changed to %d", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC set, GC percent changed to %d", got)
	}
}
