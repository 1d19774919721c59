package schema

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/engine"
)

// A lint baseline: migrations at or before it are history (applied
// everywhere, and editing them would change their checksums), so `shoal
// check` reports their lint findings without failing on them; every later
// migration is held to every rule. It comes from `check --since VERSION` or
// from a "baseline VERSION" line in the sum file, written by
// `shoal hash --baseline`.

const sumBaselineKey = "baseline"

// SumBaseline reads the "baseline VERSION" line of a sum file (ok false when
// there is none).
func SumBaseline(data []byte) (v int64, ok bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == sumBaselineKey {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || v < 0 {
				return 0, false, fmt.Errorf("%s: %q: the baseline must be a version number: run `shoal hash --baseline VERSION`", engine.SumFile, sc.Text())
			}
			return v, true, nil
		}
	}
	return 0, false, sc.Err()
}

// withBaseline puts a "baseline VERSION" line after the header comments of
// a formatted sum file.
func withBaseline(data []byte, v int64) []byte {
	line := fmt.Sprintf("# Lint findings in migrations up to the baseline are history: `shoal check` reports them without failing.\n%s %d\n", sumBaselineKey, v)
	i := 0
	for i < len(data) && data[i] == '#' {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	out := append([]byte{}, data[:i]...)
	out = append(out, line...)
	return append(out, data[i:]...)
}

// WriteSumBaseline rewrites the sum file of dir like WriteSum, with the
// baseline set to v.
func WriteSumBaseline(dir string, v int64) (bool, error) {
	return writeSum(dir, v, true)
}

// markHistory flags the lint findings of migrations at or before baseline
// as history.
func markHistory(findings []LintFinding, ms []engine.Migration, baseline int64) {
	if baseline <= 0 {
		return
	}
	version := map[string]int64{}
	for _, m := range ms {
		version[m.File] = m.Version
	}
	for i := range findings {
		if v, ok := version[findings[i].File]; ok && v <= baseline {
			findings[i].History = true
		}
	}
}
