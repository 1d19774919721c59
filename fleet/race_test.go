//go:build race

package fleet

// raceEnabled: the race detector multiplies CPU time several times over;
// memory-bound tests use fewer tenants (the bound is per tenant).
const raceEnabled = true
