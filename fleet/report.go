package fleet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteReport writes the report as indented JSON, atomically (temp file +
// rename), so a reader never sees half a report. The databases are written
// one at a time (Report.WriteJSON): a report of any size costs the memory
// of one entry.
func WriteReport(path string, rep *Report) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".shoal-report-*")
	if err != nil {
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriterSize(f, 256<<10)
	if err := rep.WriteJSON(w); err != nil {
		f.Close()
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cannot write report %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes the report as json.MarshalIndent(rep, "", "  ") would,
// followed by a newline, one database entry at a time.
func (r *Report) WriteJSON(w io.Writer) error {
	id, _ := json.Marshal(r.RunID)
	sum, err := json.MarshalIndent(r.Summary, "  ", "  ")
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "{\n  \"run_id\": %s,\n  \"summary\": %s,\n  \"databases\": [", id, sum); err != nil {
		return err
	}
	n := 0
	err = r.Each(func(d Result) error {
		data, err := json.MarshalIndent(d.plain(), "    ", "  ")
		if err != nil {
			return err
		}
		sep := ",\n    "
		if n == 0 {
			sep = "\n    "
		}
		n++
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	end := "]\n}\n"
	if n > 0 {
		end = "\n  ]\n}\n"
	}
	_, err = io.WriteString(w, end)
	return err
}

// PrintSummary writes the summary table and the tenants that did not reach
// head.
func PrintSummary(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "run %s: %d databases in %s\n", rep.RunID, rep.Summary.Total, time.Duration(rep.Summary.DurationMs)*time.Millisecond)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  outcome\tcount\t\n")
	for _, o := range Outcomes {
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
		groups := GroupFailures(failed)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  TENANT\tOUTCOME\tATTEMPT\tERROR\n")
		for _, g := range groups {
			if len(g.Tenants) > 1 {
				continue
			}
			r := g.First
			msg := ""
			if r.Error != nil {
				msg = firstLine(*r.Error)
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

// FailureGroup is the tenants of a report that ended with the same outcome
// and the same error (the tenant's own path taken out of it).
type FailureGroup struct {
	Outcome string
	Error   string
	Tenants []string
	First   Result
}

// GroupFailures groups results by outcome and error, largest group first.
func GroupFailures(rs []Result) []FailureGroup {
	idx := map[string]int{}
	var out []FailureGroup
	for _, r := range rs {
		msg := ""
		if r.Error != nil {
			msg = firstLine(*r.Error)
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
			out = append(out, FailureGroup{Outcome: r.Outcome, Error: msg, First: r})
		}
		out[i].Tenants = append(out[i].Tenants, r.Tenant)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Tenants) > len(out[j].Tenants) })
	return out
}

// PrintResults writes one line per result (the `results` table).
func PrintResults(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TENANT\tOUTCOME\tFROM\tTO\tAPPLIED\tATTEMPT\tWORKER\tDURATION\tERROR\n")
	_ = rep.Each(func(r Result) error {
		msg := ""
		if r.Error != nil {
			msg = firstLine(*r.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.Tenant, r.Outcome, ptr(r.From), ptr(r.To),
			len(r.Applied), r.Attempt, r.Worker, time.Duration(r.DurationMs)*time.Millisecond, msg)
		return nil
	})
	tw.Flush()
}

func ptr(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// ProgressPrinter shows progress: a redrawn line on a terminal, else a
// plain line every Interval.
type ProgressPrinter struct {
	W        io.Writer
	TTY      bool
	Interval time.Duration
	last     time.Time
	lastLine string
	drawn    bool
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Show prints p if it is time to (always on a TTY).
func (pp *ProgressPrinter) Show(p Progress, now time.Time) {
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
	line := FormatProgress(p)
	pp.lastLine = line
	if pp.TTY {
		fmt.Fprintf(pp.W, "\r\033[K%s", line)
		pp.drawn = true
	} else {
		fmt.Fprintln(pp.W, line)
	}
}

// Force prints p now, unless it is the line just printed.
func (pp *ProgressPrinter) Force(p Progress) {
	if FormatProgress(p) == pp.lastLine {
		return
	}
	pp.last = time.Time{}
	tty := pp.TTY
	pp.Show(p, time.Now())
	pp.TTY = tty
}

// Done ends a redrawn line.
func (pp *ProgressPrinter) Done() {
	if pp.TTY && pp.drawn {
		fmt.Fprintln(pp.W)
		pp.drawn = false
	}
}

// FormatProgress renders "412/1000 done (41%), 37.2/s, ETA 16s, 2 failed".
func FormatProgress(p Progress) string {
	var b strings.Builder
	if p.Total >= 0 {
		pct := 100.0
		if p.Total > 0 {
			pct = float64(p.Done) * 100 / float64(p.Total)
		}
		fmt.Fprintf(&b, "%d/%d done (%.0f%%)", p.Done, p.Total, pct)
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
