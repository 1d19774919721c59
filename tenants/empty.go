package tenants

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ErrEmptyFleet: --pattern matched no file under --root.
var ErrEmptyFleet = errors.New("no tenant DB matched")

// ErrRoot: --root is missing, not a directory or unreadable.
var ErrRoot = errors.New("bad --root")

// EmptyFleetError says that Pattern matched nothing under Root, and which
// files that look like tenant DBs sit at another depth (Found, at most a
// few, paths joined to Root as given), with the pattern that would match
// them (Suggest, "" if none).
type EmptyFleetError struct {
	Root, Pattern string
	Found         []string
	More          int // files like Found not listed
	Suggest       string
	// Hint is added at the end (e.g. where tenant DBs must be put).
	Hint string
}

func (e *EmptyFleetError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no tenant DB under --root %s matches --pattern '%s'", e.Root, e.Pattern)
	if len(e.Found) > 0 {
		fmt.Fprintf(&b, "; found %s", strings.Join(e.Found, ", "))
		if e.More > 0 {
			fmt.Fprintf(&b, " and %d more", e.More)
		}
		fmt.Fprintf(&b, " at another depth: try --pattern '%s'", e.Suggest)
	}
	b.WriteString(" (pass --allow-empty if an empty fleet is expected")
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	b.WriteString(")")
	return b.String()
}

// Is makes errors.Is(err, ErrEmptyFleet) true.
func (e *EmptyFleetError) Is(target error) bool { return target == ErrEmptyFleet }

// RootError is a --root that cannot be a fleet's root.
type RootError struct {
	Root string
	Err  error
}

func (e *RootError) Error() string {
	if errors.Is(e.Err, os.ErrNotExist) {
		return fmt.Sprintf("--root %s does not exist (check the path, or that the volume is mounted)", e.Root)
	}
	if e.Err == nil {
		return fmt.Sprintf("--root %s is not a directory: give the directory that holds the tenant DBs", e.Root)
	}
	return fmt.Sprintf("--root %s: %v", e.Root, e.Err)
}

// Is makes errors.Is(err, ErrRoot) true.
func (e *RootError) Is(target error) bool { return target == ErrRoot }

// Unwrap returns the file system error.
func (e *RootError) Unwrap() error { return e.Err }

// CheckRoot returns a *RootError unless root is a readable directory.
func CheckRoot(root string) error {
	st, err := os.Stat(root)
	if err != nil {
		return &RootError{Root: root, Err: err}
	}
	if !st.IsDir() {
		return &RootError{Root: root}
	}
	f, err := os.Open(root)
	if err != nil {
		return &RootError{Root: root, Err: err}
	}
	f.Close()
	return nil
}

// ExplainEmpty builds the error for a pattern that matched nothing: it
// looks (at most maxDepth levels down, at most a bounded number of
// directory entries) for files whose name matches the pattern's last
// segment at another depth, and suggests the pattern for the most common
// such depth.
func ExplainEmpty(root, pattern string) *EmptyFleetError {
	const maxDepth, maxEntries, show = 4, 20000, 3
	e := &EmptyFleetError{Root: root, Pattern: pattern}
	segs := strings.Split(pattern, "/")
	leaf := segs[len(segs)-1]
	if leaf == "*" {
		leaf = "*.db" // any file: look for SQLite-looking names
	}
	byDepth := map[int][]string{}
	seen := 0
	var walk func(dir, rel string, depth int)
	walk = func(dir, rel string, depth int) {
		if depth > maxDepth || seen >= maxEntries {
			return
		}
		f, err := os.Open(dir)
		if err != nil {
			return
		}
		defer f.Close()
		for seen < maxEntries {
			ents, err := f.ReadDir(readBatch)
			for _, ent := range ents {
				seen++
				name := ent.Name()
				if strings.HasPrefix(name, ".") {
					continue
				}
				r := name
				if rel != "" {
					r = path.Join(rel, name)
				}
				if ent.IsDir() {
					walk(filepath.Join(dir, name), r, depth+1)
					continue
				}
				if ok, _ := filepath.Match(leaf, name); ok && ent.Type().IsRegular() && depth != len(segs) {
					byDepth[depth] = append(byDepth[depth], r)
				}
			}
			if err == io.EOF || err != nil || len(ents) == 0 {
				return
			}
		}
	}
	walk(root, "", 1)
	best := 0
	for d, l := range byDepth {
		if best == 0 || len(l) > len(byDepth[best]) || len(l) == len(byDepth[best]) && d < best {
			best = d
		}
	}
	if best == 0 {
		return e
	}
	l := byDepth[best]
	sort.Strings(l)
	for i, r := range l {
		if i == show {
			e.More = len(l) - show
			break
		}
		e.Found = append(e.Found, filepath.Join(root, filepath.FromSlash(r)))
	}
	e.Suggest = strings.Repeat("*/", best-1) + leaf
	return e
}
