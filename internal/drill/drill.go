// Package drill sizes the repeated failure drills of shoal's tests (kill -9
// at random moments, racing processes, application writers beside a step).
//
// Every drill has a default count bounded for CI. SHOAL_DRILL_SCALE=N runs
// every drill N times its default count (N=10 for a nightly run), so one
// setting scales all of them alike.
package drill

import (
	"os"
	"strconv"
	"testing"
)

// EnvScale names the environment variable that multiplies every drill's count.
const EnvScale = "SHOAL_DRILL_SCALE"

// Trials is def times SHOAL_DRILL_SCALE (1 when unset). A value that is not a
// positive integer fails the test rather than silently running the default.
func Trials(t testing.TB, def int) int {
	t.Helper()
	s := os.Getenv(EnvScale)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer (10 for a nightly run)", EnvScale, s)
	}
	return def * n
}
