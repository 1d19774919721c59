package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Initial: time.Millisecond, Max: 64 * time.Millisecond}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 64, 64}
	for i, w := range want {
		if d := b.Next(); d != w*time.Millisecond {
			t.Fatalf("delay %d: %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
	b.Reset()
	if d := b.Next(); d != time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
	// A cap that is not a doubling of Initial is reached, not passed.
	b = Backoff{Initial: 100 * time.Millisecond, Max: 250 * time.Millisecond}
	for i, w := range []time.Duration{100, 200, 250, 250} {
		if d := b.Next(); d != w*time.Millisecond {
			t.Fatalf("delay %d: %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
}

func TestDelayMatchesBackoff(t *testing.T) {
	for _, c := range []struct{ initial, max time.Duration }{{5 * time.Second, 5 * time.Minute}, {time.Second, 3 * time.Second}, {time.Minute, time.Second}} {
		b := Backoff{Initial: c.initial, Max: c.max}
		for n := 1; n <= 12; n++ {
			if d, w := Delay(c.initial, c.max, n), b.Next(); d != w {
				t.Fatalf("%+v attempt %d: Delay %v, Backoff %v", c, n, d, w)
			}
		}
	}
	if d := Delay(time.Minute, time.Second, 1); d != time.Second {
		t.Fatalf("Delay caps the first delay too: %v", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a done context: %v", err)
	}
	if err := Sleep(context.Background(), time.Microsecond); err != nil {
		t.Fatal(err)
	}
	b := Backoff{Initial: time.Hour, Max: time.Hour}
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a done context: %v", err)
	}
}
