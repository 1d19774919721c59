package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/engine"
	"github.com/shoal-dev/shoal/fleet"
)

// actionError is the one place an action's error becomes an exit code and
// a stderr line: a *cliError stays as made, a bad NATS auth option is a
// usage error, anything else a failure with the CLI's advice for its kind,
// given once (not when the message already names the flag or command).
func TestActionError(t *testing.T) {
	code := func(err error) (int, string) {
		var ce *cliError
		if !errors.As(err, &ce) {
			t.Fatalf("%v: not a *cliError", err)
		}
		return ce.code, ce.msg
	}
	if actionError(nil) != nil {
		t.Fatal("nil became an error")
	}
	u := usageError("bad flag")
	if actionError(u) != u {
		t.Fatal("a *cliError was replaced")
	}
	if c, _ := code(actionError(fmt.Errorf("%w: no password", fleet.ErrBadAuthConfig))); c != exitUsage {
		t.Fatalf("bad auth config: exit %d, want %d", c, exitUsage)
	}
	locked := fmt.Errorf("/srv/a.db: %w (another migrator holds it)", engine.ErrLocked)
	c, msg := code(actionError(locked))
	if c != exitFailure || !strings.HasPrefix(msg, locked.Error()) || !strings.Contains(msg, "--busy-timeout") {
		t.Fatalf("locked: exit %d %q", c, msg)
	}
	if !errors.Is(actionError(locked), engine.ErrLocked) {
		t.Fatal("the kind is no longer reachable with errors.Is")
	}
	hinted := fmt.Errorf("/srv/a.db: %w: wait or raise --busy-timeout", engine.ErrLocked)
	if _, msg := code(actionError(hinted)); msg != hinted.Error() {
		t.Fatalf("advice given twice: %q", msg)
	}
	plain := errors.New("something else")
	if c, msg := code(actionError(plain)); c != exitFailure || msg != "something else" {
		t.Fatalf("plain: exit %d %q", c, msg)
	}
}
