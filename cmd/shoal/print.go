package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/fleet"
	"golang.org/x/term"
)

// The human printing of fleet commands: the summary table of a run, the
// results table and the progress line (redrawn on a terminal).

// printSummary writes the summary table and the tenants that did not reach
// head.
func printSummary(w io.Writer, rep *fleet.Report) {
	fmt.Fprintf(w, "run %s: %d databases in %s\n", rep.RunID, rep.Summary.Total, time.Duration(rep.Summary.DurationMs)*time.Millisecond)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  outcome\tcount\t\n")
	for _, o := range fleet.Outcomes {
		if n := rep.Summary.Counts[o]; n > 0 {
			fmt.Fprintf(tw, "  %s\t%d\t\n", o, n)
		}
	}
	if rep.Summary.Pending > 0 {
		fmt.Fprintf(tw, "  (no result yet)\t%d\t\n", rep.Summary.Pending)
	}
	fmt.Fprintf(tw, "  total\t%d\t\n", rep.Summary.Total)
	tw.Flush()
	failed := rep.Failed()
	if len(failed) > 0 {
		fmt.Fprintf(w, "%d database(s) not at head:\n", len(failed))
		// Tenants failing the same way are one line: "18 tenants: failed:
		// migration 0007_x.sql (up) failed at statement 2 ...".
		groups := groupFailures(failed)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  TENANT\tOUTCOME\tATTEMPT\tERROR\n")
		for _, g := range groups {
			if len(g.Tenants) > 1 {
				continue
			}
			r := g.First
			msg := ""
			if r.Error != nil {
				msg = resultLine(*r.Error)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", r.Tenant, r.Outcome, r.Attempt, msg)
		}
		tw.Flush()
		for _, g := range groups {
			if len(g.Tenants) < 2 {
				continue
			}
			sample := g.Tenants
			more := ""
			if len(sample) > 3 {
				more = fmt.Sprintf(", and %d more", len(sample)-3)
				sample = sample[:3]
			}
			fmt.Fprintf(w, "  %d tenants: %s: %s (%s%s)\n", len(g.Tenants), g.Outcome, g.Error, strings.Join(sample, ", "), more)
		}
	}
}

// failureGroup is the tenants of a report that ended with the same outcome
// and the same error (the tenant's own path taken out of it).
type failureGroup struct {
	Outcome string
	Error   string
	Tenants []string
	First   fleet.Result
}

// groupFailures groups results by outcome and error, largest group first.
func groupFailures(rs []fleet.Result) []failureGroup {
	idx := map[string]int{}
	var out []failureGroup
	for _, r := range rs {
		msg := ""
		if r.Error != nil {
			msg = resultLine(*r.Error)
			if r.Path != "" {
				msg = strings.ReplaceAll(msg, r.Path+": ", "")
				msg = strings.ReplaceAll(msg, r.Path, "<db>")
			}
		}
		key := r.Outcome + "\x00" + msg
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, failureGroup{Outcome: r.Outcome, Error: msg, First: r})
		}
		out[i].Tenants = append(out[i].Tenants, r.Tenant)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Tenants) > len(out[j].Tenants) })
	return out
}

// printResults writes one line per result (the `results` table).
func printResults(w io.Writer, rep *fleet.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TENANT\tOUTCOME\tFROM\tTO\tAPPLIED\tATTEMPT\tWORKER\tDURATION\tERROR\n")
	_ = rep.Each(func(r fleet.Result) error {
		msg := ""
		if r.Error != nil {
			msg = resultLine(*r.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Tenant, r.Outcome, orDash(r.From), orDash(r.To),
			len(r.Applied), r.Attempt, r.Worker, time.Duration(r.DurationMs)*time.Millisecond, msg)
		return nil
	})
	tw.Flush()
}

func orDash(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func resultLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// progressPrinter shows progress: a redrawn line on a terminal, else a
// plain line every Interval.
type progressPrinter struct {
	W        io.Writer
	TTY      bool
	Interval time.Duration
	last     time.Time
	lastLine string
	drawn    bool
}

// isTerminal reports whether w is a terminal (not merely a character
// device: /dev/null is one too).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Show prints p if it is time to (always on a TTY).
func (pp *progressPrinter) Show(p fleet.Progress, now time.Time) {
	if !pp.TTY {
		iv := pp.Interval
		if iv <= 0 {
			iv = 5 * time.Second
		}
		if !pp.last.IsZero() && now.Sub(pp.last) < iv {
			return
		}
	}
	pp.last = now
	line := formatProgress(p)
	pp.lastLine = line
	if pp.TTY {
		fmt.Fprintf(pp.W, "\r\033[K%s", line)
		pp.drawn = true
	} else {
		fmt.Fprintln(pp.W, line)
	}
}

// Force prints p now, unless it is the line just printed.
func (pp *progressPrinter) Force(p fleet.Progress) {
	if formatProgress(p) == pp.lastLine {
		return
	}
	pp.last = time.Time{}
	tty := pp.TTY
	pp.Show(p, time.Now())
	pp.TTY = tty
}

// Done ends a redrawn line.
func (pp *progressPrinter) Done() {
	if pp.TTY && pp.drawn {
		fmt.Fprintln(pp.W)
		pp.drawn = false
	}
}

// formatProgress renders "412/1000 done (41%), 37.2/s, ETA 16s, 2 failed".
func formatProgress(p fleet.Progress) string {
	var b strings.Builder
	if p.Total >= 0 {
		pct := 100.0
		if p.Total > 0 {
			pct = float64(p.Done) * 100 / float64(p.Total)
		}
		about := ""
		if p.Estimated {
			about = "~" // counted ahead of the producer, still walking
		}
		fmt.Fprintf(&b, "%d/%s%d done (%.0f%%)", p.Done, about, p.Total, pct)
	} else {
		fmt.Fprintf(&b, "%d/? done (still scanning)", p.Done)
	}
	fmt.Fprintf(&b, ", %.1f/s", p.Rate)
	if p.ETA > 0 {
		fmt.Fprintf(&b, ", ETA %s", p.ETA.Round(time.Second))
	}
	fmt.Fprintf(&b, ", %d failed", p.Failed)
	return b.String()
}
