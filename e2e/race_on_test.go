//go:build race

package e2e_test

// raceEnabled: the race detector makes SQLite (pure Go) many times slower;
// the cluster drill then runs a smaller fleet to stay within its bound.
const raceEnabled = true
