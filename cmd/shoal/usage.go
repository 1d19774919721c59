package main

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
	"go.uber.org/zap/zapcore"
)

// Usage handling shared by every command: help text without duplicated or
// misleading defaults, required flags marked, flag errors as usage errors
// (exit 2) with a hint for global flags given after the command, positional
// arguments refused where a command takes none, --log-level/--log-format
// validated once, and the closest command suggested for a typo.

// requiredFlags are the flags a command cannot run without (checked by the
// commands themselves, since they may also come from the environment).
var requiredFlags = map[string][]string{
	"migrate": {"db"}, "status": {"db"}, "down": {"db", "to"}, "redo": {"db"}, "enroll": {"db"},
	"accept": {"db"}, "backup": {"db"}, "restore": {"db"}, "diff": {"db"}, "enqueue": {"db"},
	"run": {"root"}, "produce": {"root"}, "fleet status": {"root"}, "fleet enroll": {"root"},
	"demo-fleet": {"root"}, "work": {"root"}, "results": {"run-id"},
}

// takesArgs are the commands with positional arguments.
var takesArgs = map[string]bool{"new": true, "restore": true, "accept": true, "renumber": true, "autogen": true, "help": true}

var globalFlagNames = map[string]bool{"log-format": true, "log-level": true}

// defaultInUsage is a "(default: X)" written in a flag's usage text.
var defaultInUsage = regexp.MustCompile(`\s*\(default: ([^()]*)\)`)

// noDefaultInt64 is an Int64Flag shown without a default (a required one).
type noDefaultInt64 struct{ *cli.Int64Flag }

func (f noDefaultInt64) GetDefaultText() string { return "" }

func (f noDefaultInt64) String() string { return cli.FlagStringer(f) }

// tidyCommands applies the shared usage handling to cmds and their
// subcommands; path is the parent's command path ("" at the top).
func tidyCommands(cmds []*cli.Command, path string) {
	for _, cmd := range cmds {
		full := strings.TrimSpace(path + " " + cmd.Name)
		req := map[string]bool{}
		for _, n := range requiredFlags[full] {
			req[n] = true
		}
		for i, f := range cmd.Flags {
			name := f.Names()[0]
			switch ff := f.(type) {
			case *cli.BoolFlag:
				ff.DisableDefaultText = true
			case *cli.StringFlag:
				ff.Usage = markRequired(ff.Usage, req[name])
			case *cli.Int64Flag:
				if m := defaultInUsage.FindStringSubmatch(ff.Usage); m != nil {
					ff.Usage, ff.DefaultText = strings.Replace(ff.Usage, m[0], "", 1), m[1]
				}
				ff.Usage = markRequired(ff.Usage, req[name])
				if req[name] {
					cmd.Flags[i] = noDefaultInt64{ff}
				}
			case *cli.IntFlag:
				if m := defaultInUsage.FindStringSubmatch(ff.Usage); m != nil {
					ff.Usage, ff.DefaultText = strings.Replace(ff.Usage, m[0], "", 1), m[1]
				}
			case *cli.DurationFlag:
				if m := defaultInUsage.FindStringSubmatch(ff.Usage); m != nil {
					ff.Usage, ff.DefaultText = strings.Replace(ff.Usage, m[0], "", 1), m[1]
				}
			}
		}
		cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
			return flagError(full, err)
		}
		if cmd.Action != nil && len(cmd.Subcommands) == 0 && !takesArgs[cmd.Name] {
			action := cmd.Action
			cmd.Action = func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usageError("shoal %s takes no arguments, got %q (flags go before any argument; see shoal %s --help)",
						full, c.Args().First(), full)
				}
				return action(c)
			}
		}
		if cmd.Action != nil {
			action := cmd.Action
			cmd.Action = func(c *cli.Context) error { return actionError(action(c)) }
		}
		tidyCommands(cmd.Subcommands, full)
	}
}

func markRequired(usage string, required bool) string {
	if !required || strings.Contains(usage, "(required)") {
		return usage
	}
	return usage + " (required)"
}

// flagError turns a flag parse error of command cmd into a usage error,
// pointing a global flag given after the command to its place.
func flagError(cmd string, err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "flag provided but not defined: -"); i >= 0 {
		name := strings.TrimLeft(msg[i+len("flag provided but not defined: -"):], "-")
		if globalFlagNames[name] {
			return usageError("--%s is a global flag: put it before the command, e.g. `shoal --%s VALUE %s ...`", name, name, cmd)
		}
		return usageError("%s: flag provided but not defined: --%s (see shoal %s --help)", cmd, name, cmd)
	}
	return usageError("%s: %s (see shoal %s --help)", cmd, msg, cmd)
}

// checkGlobal validates the global flags and the command name, for every
// command, before it runs.
func checkGlobal(c *cli.Context) error {
	if _, err := zapcore.ParseLevel(c.String("log-level")); err != nil {
		return usageError("invalid --log-level %q: use debug, info, warn or error", c.String("log-level"))
	}
	if f := c.String("log-format"); f != "json" && f != "console" {
		return usageError("invalid --log-format %q: use json or console", f)
	}
	if c.Args().Present() {
		name := c.Args().First()
		if c.App.Command(name) == nil && !strings.HasPrefix(name, "-") {
			if s := closestCommand(c.App.Commands, name); s != "" {
				return usageError("unknown command %q: did you mean %q? (see shoal --help)", name, s)
			}
			return usageError("unknown command %q (see shoal --help)", name)
		}
	}
	return nil
}

// allCommandNames lists every command and subcommand name.
func allCommandNames(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		out = append(out, c)
		out = append(out, allCommandNames(c.Subcommands)...)
	}
	return out
}

// closestCommand is the command name nearest to name (edit distance at most
// 2, or a prefix), or "".
func closestCommand(cmds []*cli.Command, name string) string {
	best, bestD := "", 3
	for _, cmd := range cmds {
		if cmd.Hidden {
			continue
		}
		for _, n := range cmd.Names() {
			d := editDistance(name, n)
			if strings.HasPrefix(n, name) && len(name) >= 3 {
				d = min(d, 1)
			}
			if d < bestD {
				best, bestD = n, d
			}
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// versionString is the module version and VCS revision of the binary:
// "v1.2.3 (rev 0123abcd, 2026-12-07T08:00:00Z)", "(devel)" for a build
// from a work tree, "+dirty" when it had uncommitted changes. -ldflags
// "-X main.version=..." overrides the module version.
func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && info.Main.Version != "" {
		v = info.Main.Version
	}
	var rev, at string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return v + " (no VCS revision: built outside a git checkout)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	if at != "" {
		return fmt.Sprintf("%s (rev %s, %s)", v, rev, at)
	}
	return fmt.Sprintf("%s (rev %s)", v, rev)
}
