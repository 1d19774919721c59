package main

import (
	"github.com/shoal-dev/shoal/schema"
	"github.com/urfave/cli/v2"
)

// writeSumWithBaseline is `shoal hash`: the sum file, with the lint
// baseline set when --baseline (the newest migration) or --baseline-at N
// is given, else kept as it was.
func writeSumWithBaseline(c *cli.Context, dir string) (bool, error) {
	at := c.Int64("baseline-at")
	if !c.Bool("baseline") && at == 0 {
		return schema.WriteSum(dir)
	}
	if at == 0 {
		e, err := openEngine(c)
		if err != nil {
			return false, err
		}
		at = e.Head()
	}
	return schema.WriteSumBaseline(dir, at)
}
