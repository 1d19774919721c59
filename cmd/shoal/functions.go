package main

import (
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/engine"
)

// functionHint adds to a "no such function: X" failure what X is and how to
// provide it: SQLite has no such function, so it is the application's; the
// shoal binary cannot load the application's code, a Go program that embeds
// the engine registers it (engine.Options.Functions).
func functionHint(err error, msg string) string {
	name, ok := engine.MissingFunction(err)
	if !ok || strings.Contains(msg, "application function") {
		return msg
	}
	hint := fmt.Sprintf(" (%s is not a SQLite function: it is an application function, which your application registers on its own connections; "+
		"run this migration from a Go program that embeds shoal's engine and passes %s in engine.Options.Functions, or rewrite the migration in SQL)", name, name)
	lines := strings.SplitN(msg, "\n", 2)
	lines[0] += hint
	return strings.Join(lines, "\n")
}
