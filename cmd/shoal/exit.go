package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
	"github.com/urfave/cli/v2"
)

// Exit codes (contract): 0 ok; 1 a migration failed, a DB was refused, the
// migrations directory is invalid, a check found a problem or a fleet run
// did not bring every DB to head; 2 usage.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// cliError carries an exit code and the one line printed on stderr.
type cliError struct {
	code int
	msg  string
	err  error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// usageError is exit 2: a bad flag or a missing required option.
func usageError(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// failure is exit 1 with a message; err (may be nil) stays reachable with errors.Is.
func failure(err error, format string, args ...any) error {
	return &cliError{code: exitFailure, msg: fmt.Sprintf(format, args...), err: err}
}

// actionError is the one place where an action's error becomes an exit
// code and the line printed on stderr: a *cliError stays as the action made
// it; a bad NATS authentication option is a usage error (2); anything else
// is a failure (1) saying what the error says, followed by the CLI's advice
// for its kind (cliAdvice) when the message does not give it already.
func actionError(err error) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, fleet.ErrBadAuthConfig) {
		return usageError("%v", err)
	}
	msg := cliTerms(err)
	for _, a := range cliAdvice {
		if errors.Is(err, a.kind) && !strings.Contains(msg, a.mentions) {
			msg += " (" + a.advice + ")"
			break
		}
	}
	return failure(err, "%s", msg)
}

// cliAdvice is what the CLI adds to an error of a kind: the library's errors
// speak of API options, the CLI names its flags and commands. An entry is
// skipped when the message already mentions the flag or command it names.
// The engine's errors still carry most of their CLI hints themselves; each
// kind's advice moves here when the engine's hint is removed.
var cliAdvice = []struct {
	kind     error
	mentions string
	advice   string
}{
	{engine.ErrLocked, "--busy-timeout", "retry later or raise --busy-timeout"},
}

// apiTerms are the API names an engine error's hint may give for what to
// do, and what the CLI says instead (PATH: the error's database).
var apiTerms = []struct{ api, cli string }{
	{"Options.BusyTimeout", "--busy-timeout"},
	{"Engine.Enroll", "`shoal enroll --db PATH`"},
	{"set MigrateOptions.AllowOutOfOrder", "pass --allow-out-of-order"},
	{"MigrateOptions.AllowChanged", "--allow-changed"},
	{"Engine.Accept", "`shoal accept`"},
	{"Engine.Down", "`shoal down`"},
	{"migrate it with Engine.Migrate", "run `shoal migrate --db PATH`"},
	{"Engine.Migrate", "`shoal migrate`"},
	{"BackupOptions.Dir", "--backup-dir"},
	{"BackupOptions.Root", "--root"},
}

// cliTerms is err's message with the hint of its *engine.Error in the CLI's
// words (apiTerms): the library speaks of its API, the CLI of its flags and
// commands.
func cliTerms(err error) string {
	msg := err.Error()
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Hint == "" {
		return msg
	}
	cli := *ee
	for _, t := range apiTerms {
		cli.Hint = strings.ReplaceAll(cli.Hint, t.api, strings.ReplaceAll(t.cli, "PATH", ee.Path))
	}
	if cli.Hint == ee.Hint {
		return msg
	}
	return strings.Replace(msg, ee.Error(), cli.Error(), 1)
}

// silentFailure is exit 1 when the command already printed what went wrong
// (a fleet run whose report says which tenants failed).
var errSilent = &cliError{code: exitFailure}

// run executes the CLI and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := natsOutcome(app, app.Run(args))
	notice := func() {
		if used, _ := app.Metadata[embeddedKey].(bool); used {
			fmt.Fprintln(stderr, embeddedNotice)
		}
	}
	if err == nil {
		notice()
		return exitOK
	}
	code, msg := classify(err, app)
	msg = functionHint(err, msg)
	if msg != "" {
		// One human-readable line first, whatever the log format.
		fmt.Fprintln(stderr, "shoal: "+firstLine(msg))
		if rest := restLines(msg); rest != "" {
			fmt.Fprintln(stderr, rest)
		}
	}
	notice()
	return code
}

var noHelpTopic = regexp.MustCompile(`No help topic for '([^']*)'`)

func classify(err error, app *cli.App) (int, string) {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code, ce.msg
	}
	msg := err.Error()
	if m := noHelpTopic.FindStringSubmatch(msg); m != nil {
		if s := closestCommand(allCommandNames(app.Commands), m[1]); s != "" {
			return exitUsage, fmt.Sprintf("unknown command %q: did you mean %q? (see shoal --help)", m[1], s)
		}
		return exitUsage, fmt.Sprintf("unknown command %q (see shoal --help)", m[1])
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode(), msg
	}
	// urfave/cli reports flag problems as plain errors.
	if strings.Contains(msg, "flag provided but not defined") || strings.HasPrefix(msg, "Required flag") ||
		strings.HasPrefix(msg, "invalid value") {
		return exitUsage, msg + " (see --help)"
	}
	return exitFailure, msg
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func restLines(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimRight(s[i+1:], "\n")
	}
	return ""
}
