package fleet

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/engine"
)

// randomResult is a result with every field drawn: strings with what JSON
// escapes (quotes, controls, HTML characters, non-ASCII, invalid UTF-8,
// U+2028), null and set pointers, empty, nil and unsorted applied lists,
// times in other zones and out of RFC 3339's range.
func randomResult(rng *rand.Rand) Result {
	pieces := []string{"", "a", "tenant-000123/app.db", `"`, `\`, "<", ">", "&", "\n", "\t", "\x00", "\x1f", "\x7f",
		"é", "日本", "\xff", "\xe2\x80\xa8", "\u2029", "/srv/x y/app.db", "release-42", "0123456789abcdef"}
	str := func() string {
		s := ""
		for range rng.Intn(4) {
			s += pieces[rng.Intn(len(pieces))]
		}
		return s
	}
	optStr := func() *string {
		if rng.Intn(2) == 0 {
			return nil
		}
		s := str()
		return &s
	}
	optInt := func() *int64 {
		if rng.Intn(3) == 0 {
			return nil
		}
		v := rng.Int63n(1<<40) - 1<<39
		return &v
	}
	r := Result{RunID: str(), JobID: str(), Tenant: str(), Path: str(), Outcome: str(), From: optInt(), To: optInt(),
		Backup: optStr(), Error: optStr(), Retryable: rng.Intn(2) == 0, Attempt: rng.Intn(1000) - 5, Worker: str(),
		DurationMs: rng.Int63() - rng.Int63(), AdoptedFrom: optStr()}
	switch rng.Intn(3) {
	case 0: // nil
	case 1:
		r.Applied = []engine.Applied{}
	default:
		for range 1 + rng.Intn(4) {
			r.Applied = append(r.Applied, engine.Applied{Version: rng.Int63n(10), Name: str(), File: str(), DurationMs: rng.Int63n(1e6)})
		}
	}
	zones := []*time.Location{time.UTC, time.FixedZone("x", 5*3600+30*60), time.FixedZone("s", -(3*3600 + 7)), time.Local}
	switch rng.Intn(6) {
	case 0: // zero time
	case 1:
		r.At = time.Date(10000+rng.Intn(5), 1, 1, 0, 0, 0, 0, time.UTC) // out of RFC 3339's range
	default:
		r.At = time.Unix(rng.Int63n(4e9), rng.Int63n(1e9)).In(zones[rng.Intn(len(zones))])
	}
	return r
}

// TestAppendResultIndentIsMarshalIndent: the report entry encoder writes
// exactly what encoding/json writes, for any result; where it cannot, it
// says so and appendEntry gives encoding/json's output (or error).
func TestAppendResultIndentIsMarshalIndent(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	fast := 0
	for i := range 20000 {
		r := randomResult(rng)
		prefix := []string{"", entryPrefix, "\t"}[i%3]
		want, werr := json.MarshalIndent(r.plain(), prefix, "  ")
		got, ok := appendResultIndent([]byte("keep"), &r, prefix)
		if ok {
			fast++
			if werr != nil || !bytes.Equal(got[4:], want) || string(got[:4]) != "keep" {
				t.Fatalf("result %#v, prefix %q:\ngot  %s\nwant %s (%v)", r, prefix, got, want, werr)
			}
		} else if string(got) != "keep" {
			t.Fatalf("declined, but changed dst to %q", got)
		}
		if prefix != entryPrefix {
			continue
		}
		entry, err := appendEntry(nil, &r)
		if (err != nil) != (werr != nil) || (err == nil && !bytes.Equal(entry, want)) {
			t.Fatalf("appendEntry: %s (%v), want %s (%v)", entry, err, want, werr)
		}
	}
	if fast < 15000 {
		t.Fatalf("the fast encoder took only %d of 20000 results", fast)
	}
}
