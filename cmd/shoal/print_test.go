package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/fleet"
)

// 18 tenants failing the same migration the same way are one summary line,
// not 18; a different failure keeps its own line.
func TestSummaryGroupsFailures(t *testing.T) {
	rep := &fleet.Report{RunID: "r", Summary: fleet.Summary{Total: 19, Counts: map[string]int{"failed": 18, "unmanaged": 1}}}
	for i := range 18 {
		p := fmt.Sprintf("/srv/t-%02d/app.db", i)
		e := p + ": migration 0007_x.sql (up) failed at statement 2 (line 3): no such column: y; the database was left as before this step: fix the migration and run again"
		rep.Databases = append(rep.Databases, fleet.Result{Tenant: fmt.Sprintf("t-%02d/app.db", i), Path: p, Outcome: "failed", Error: &e, Attempt: 1})
	}
	u := "/srv/legacy/app.db: database is not managed by shoal"
	rep.Databases = append(rep.Databases, fleet.Result{Tenant: "legacy/app.db", Path: "/srv/legacy/app.db", Outcome: "unmanaged", Error: &u, Attempt: 1})
	var b bytes.Buffer
	printSummary(&b, rep)
	out := b.String()
	if !strings.Contains(out, "18 tenants: failed: migration 0007_x.sql (up) failed at statement 2 (line 3): no such column: y") ||
		!strings.Contains(out, "and 15 more") || strings.Count(out, "no such column") != 1 || !strings.Contains(out, "legacy/app.db") {
		t.Fatalf("summary:\n%s", out)
	}
}

func TestFormatProgress(t *testing.T) {
	got := formatProgress(fleet.Progress{Done: 5, Total: 10, Rate: 2.5, ETA: 2 * time.Second, Failed: 1})
	if got != "5/10 done (50%), 2.5/s, ETA 2s, 1 failed" {
		t.Fatal(got)
	}
	if got := formatProgress(fleet.Progress{Done: 3, Total: -1}); got != "3/? done (still scanning), 0.0/s, 0 failed" {
		t.Fatal(got)
	}
}

// /dev/null is a character device but not a terminal: progress written to
// it is plain lines, never redrawn with ANSI escapes.
func TestIsTerminalNotDevNull(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatalf("%s taken for a terminal", os.DevNull)
	}
	var b bytes.Buffer
	if isTerminal(&b) {
		t.Fatal("a buffer taken for a terminal")
	}
}
