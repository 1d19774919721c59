package schema

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shoal-dev/shoal/engine"
)

// The sum file (shoal.sum, in the migrations directory) lists every
// migration file with the checksum shoal records for it, one line each in
// version order, then a total line that hashes all of them:
//
//	# shoal.sum: written by `shoal new` and `shoal hash`, checked by `shoal check`.
//	0001_create_users.sql 5f1c...
//	0002_create_notes.sql 9a03...
//	total 77be...
//
// Two branches that each add a migration both change the line after the
// last migration and the total line, so git reports a conflict when they
// meet instead of the collision reaching a deploy.

const sumHeader = "# shoal.sum: one line per migration (file, SHA-256 of its normalised text) and a total.\n" +
	"# Written by `shoal new` and `shoal hash`; checked by `shoal check`. A merge conflict here\n" +
	"# means two branches added migrations: run `shoal renumber`, then `shoal hash`.\n"

// SumEntry is one migration line of the sum file.
type SumEntry struct {
	File     string
	Checksum string
}

// MigrationFile is a migration file found in a directory listing.
type MigrationFile struct {
	File string
	Name engine.MigrationName
}

// ListMigrationFiles lists the migration files at the top level of fsys in
// version order (then by name), duplicates included: unlike New it does not
// refuse two files with one version, so tools can repair that. A name that
// starts with a digit but does not parse is an error naming it.
func ListMigrationFiles(fsys fs.FS) ([]MigrationFile, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var out []MigrationFile
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		n, ok, err := engine.ParseName(e.Name())
		if err != nil {
			return nil, fmt.Errorf("%s: %v", e.Name(), err)
		}
		if ok {
			out = append(out, MigrationFile{File: e.Name(), Name: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name.Version != out[j].Name.Version {
			return out[i].Name.Version < out[j].Name.Version
		}
		return out[i].File < out[j].File
	})
	return out, nil
}

// ComputeSum returns the sum entries of the migration files in fsys.
func ComputeSum(fsys fs.FS) ([]SumEntry, error) {
	if lf, _, err := engine.LayoutFiles(fsys, ""); err == nil && lf != nil {
		// Another tool's layout: every file of every migration (down parts
		// and side files included), in version order.
		out := make([]SumEntry, 0, len(lf))
		for _, f := range lf {
			data, err := fs.ReadFile(fsys, f)
			if err != nil {
				return nil, err
			}
			out = append(out, SumEntry{File: f, Checksum: engine.Checksum(data)})
		}
		return out, nil
	}
	files, err := ListMigrationFiles(fsys)
	if err != nil {
		return nil, err
	}
	out := make([]SumEntry, 0, len(files))
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f.File)
		if err != nil {
			return nil, err
		}
		out = append(out, SumEntry{File: f.File, Checksum: engine.Checksum(data)})
	}
	return out, nil
}

// sumTotal hashes the migration lines.
func sumTotal(entries []SumEntry) string {
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s %s\n", e.File, e.Checksum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FormatSum renders the sum file.
func FormatSum(entries []SumEntry) []byte {
	var b bytes.Buffer
	b.WriteString(sumHeader)
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s\n", e.File, e.Checksum)
	}
	fmt.Fprintf(&b, "total %s\n", sumTotal(entries))
	return b.Bytes()
}

// ErrSumConflict: the sum file holds git conflict markers.
var ErrSumConflict = errors.New("shoal.sum has merge conflict markers: two branches added migrations; run `shoal renumber`, then `shoal hash`")

// ParseSum reads a sum file. Conflict markers are ErrSumConflict.
func ParseSum(data []byte) (entries []SumEntry, total string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasPrefix(t, "<<<<<<<") || strings.HasPrefix(t, "=======") || strings.HasPrefix(t, ">>>>>>>") || strings.HasPrefix(t, "|||||||") {
			return nil, "", ErrSumConflict
		}
		file, sum, ok := sumLine(t)
		if !ok {
			return nil, "", fmt.Errorf("%s line %d: want \"<file> <checksum>\" or \"total <hash>\", got %q: run `shoal hash` to rewrite it", engine.SumFile, line, t)
		}
		if file == "total" {
			total = sum
			continue
		}
		if file == sumBaselineKey {
			continue // the lint baseline (baseline.go)
		}
		entries = append(entries, SumEntry{File: file, Checksum: sum})
	}
	return entries, total, sc.Err()
}

// sumLine splits a trimmed sum file line into the file name and the
// checksum after its last blank (a migration's description may hold
// spaces; a checksum never does).
func sumLine(t string) (file, sum string, ok bool) {
	i := strings.LastIndexAny(t, " \t")
	if i < 0 {
		return "", "", false
	}
	file, sum = strings.TrimSpace(t[:i]), t[i+1:]
	return file, sum, file != "" && sum != ""
}

// VerifySum compares the sum file in fsys (if there is one) with the
// migration files, and returns one message per difference, each saying what
// to do. No sum file: no problems.
func VerifySum(fsys fs.FS) ([]string, error) {
	data, err := fs.ReadFile(fsys, engine.SumFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", engine.SumFile, err)
	}
	recorded, total, err := ParseSum(data)
	if err != nil {
		return []string{err.Error()}, nil
	}
	actual, err := ComputeSum(fsys)
	if err != nil {
		return nil, err
	}
	var out []string
	rec := map[string]string{}
	for _, e := range recorded {
		rec[e.File] = e.Checksum
	}
	act := map[string]string{}
	for _, e := range actual {
		act[e.File] = e.Checksum
		sum, ok := rec[e.File]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s is not in %s: run `shoal hash` (or create migrations with `shoal new`), and commit %s with it", e.File, engine.SumFile, engine.SumFile))
		case sum != e.Checksum:
			out = append(out, fmt.Sprintf("%s changed since %s was written: never edit a migration that is applied anywhere (add a new one); if it is not applied yet, run `shoal hash`", e.File, engine.SumFile))
		}
	}
	for _, e := range recorded {
		if _, ok := act[e.File]; !ok {
			out = append(out, fmt.Sprintf("%s lists %s, which is not in the directory: restore it, or run `shoal hash` if it was renamed on purpose", engine.SumFile, e.File))
		}
	}
	if len(out) == 0 && total != sumTotal(recorded) {
		out = append(out, fmt.Sprintf("the total line of %s is wrong (edited by hand, or a merge kept one side's total): run `shoal hash`", engine.SumFile))
	}
	return out, nil
}

// WriteSum (re)writes the sum file of the migrations directory dir on disk,
// atomically. It reports whether the content changed.
func WriteSum(dir string) (bool, error) {
	return writeSum(dir, 0, false)
}

// writeSum writes the sum file, keeping the baseline line of the old one
// unless setBaseline (then the baseline is baseline).
func writeSum(dir string, baseline int64, setBaseline bool) (bool, error) {
	entries, err := ComputeSum(os.DirFS(dir))
	if err != nil {
		return false, err
	}
	data := FormatSum(entries)
	path := filepath.Join(dir, engine.SumFile)
	old, oldErr := os.ReadFile(path)
	if !setBaseline && oldErr == nil {
		if v, ok, err := SumBaseline(old); err == nil && ok {
			baseline, setBaseline = v, true
		}
	}
	if setBaseline {
		data = withBaseline(data, baseline)
	}
	if oldErr == nil && bytes.Equal(old, data) {
		return false, nil
	}
	tmp, err := os.CreateTemp(dir, ".shoal.sum.*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}

// SumSides reads a sum file that may hold git conflict markers and returns
// the files listed outside any conflict or on "our" side (between <<<<<<<
// and =======): the ones the current branch already had.
func SumSides(data []byte) (ours map[string]bool) {
	ours = map[string]bool{}
	side := 0 // 0 outside, 1 ours, 2 base, 3 theirs
	for _, l := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "<<<<<<<"):
			side = 1
			continue
		case strings.HasPrefix(t, "|||||||"):
			side = 2
			continue
		case strings.HasPrefix(t, "======="):
			side = 3
			continue
		case strings.HasPrefix(t, ">>>>>>>"):
			side = 0
			continue
		}
		if file, _, ok := sumLine(t); (side == 0 || side == 1) && ok && file != "total" && !strings.HasPrefix(t, "#") {
			ours[file] = true
		}
	}
	return ours
}
