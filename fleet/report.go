package fleet

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/shoal-dev/shoal/internal/outfile"
)

// WriteReport writes the report as indented JSON, atomically (temp file +
// rename), so a reader never sees half a report; a symlink is followed, and
// a device or pipe (/dev/null, /dev/stdout) is written in place, never
// replaced (internal/outfile). The databases are written one at a time
// (Report.WriteJSON): a report of any size costs the memory of one entry.
func WriteReport(path string, rep *Report) error {
	if err := outfile.Write(path, 0o600, rep.WriteJSON); err != nil {
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
	var buf []byte
	entry := func(data []byte) error {
		sep := ",\n    "
		if n == 0 {
			sep = "\n    "
		}
		n++
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	if r.src != nil {
		for _, i := range r.order {
			if buf, err = r.src.entryJSON(i, buf[:0]); err != nil {
				return err
			}
			if err := entry(buf); err != nil {
				return err
			}
		}
	} else {
		for i := range r.Databases {
			if buf, err = appendEntry(buf[:0], &r.Databases[i]); err != nil {
				return err
			}
			if err := entry(buf); err != nil {
				return err
			}
		}
	}
	end := "]\n}\n"
	if n > 0 {
		end = "\n  ]\n}\n"
	}
	_, err = io.WriteString(w, end)
	return err
}
