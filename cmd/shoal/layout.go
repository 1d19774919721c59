package main

import (
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/urfave/cli/v2"
)

// layoutFlag forces the layout of --dir (docs/switching.md); it is added to
// every command that takes --dir.
func layoutFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "layout",
		Usage:   "layout of --dir, detected when not given: " + strings.Join(engine.Layouts(), ", "),
		EnvVars: []string{"SHOAL_LAYOUT"},
	}
}

// addLayoutFlags gives every command (and subcommand) that takes --dir the
// --layout flag too.
func addLayoutFlags(cmds []*cli.Command) {
	for _, c := range cmds {
		addLayoutFlags(c.Subcommands)
		hasDir, hasLayout := false, false
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				hasDir = hasDir || n == "dir"
				hasLayout = hasLayout || n == "layout"
			}
		}
		if hasDir && !hasLayout {
			c.Flags = append(c.Flags, layoutFlag())
		}
	}
}
