package tenants

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// DefaultPattern matches one DB file per tenant directory.
const DefaultPattern = "*/*.db"

// readBatch is how many directory entries the walk reads at a time: a
// directory of 100,000 tenants is never held in memory.
const readBatch = 256

// ValidatePattern checks a --pattern: relative, '/'-separated segments,
// each a valid filepath.Match pattern.
func ValidatePattern(pattern string) error {
	if pattern == "" {
		return errors.New("empty --pattern")
	}
	if strings.HasPrefix(pattern, "/") || filepath.IsAbs(pattern) {
		return fmt.Errorf("--pattern %q must be relative to --root", pattern)
	}
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("--pattern %q: empty, '.' or '..' segment", pattern)
		}
		if _, err := filepath.Match(seg, ""); err != nil {
			return fmt.Errorf("--pattern %q: segment %q: %v", pattern, seg, err)
		}
	}
	return nil
}

// Walk calls fn for every regular file under root whose path relative to
// root matches pattern, segment by segment with filepath.Match rules (so
// "*" never crosses a '/'). tenant is that relative path (with '/'), path
// the file's path (root joined). The walk streams: it reads directories in
// batches and descends only as deep as the pattern, so memory does not grow
// with the number of tenants. Order is the directories' order on disk.
// An unreadable directory stops the walk with an error naming it, since a
// partial fleet must not look whole.
//
// The walk never follows a symlink below root (root itself may be one): a
// symlinked directory is not entered and a symlinked file is not a tenant,
// wherever the link points, so nothing outside root is ever published. Such
// entries, and matching files that are not regular files (pipes, sockets,
// devices), are passed to skip (when set) with the reason.
func Walk(ctx context.Context, root, pattern string, fn func(tenant, path string) error) error {
	return WalkSkipping(ctx, root, pattern, fn, nil)
}

// WalkSkipping is Walk that tells skip about each entry it refused.
func WalkSkipping(ctx context.Context, root, pattern string, fn func(tenant, path string) error, skip func(tenant, reason string)) error {
	if err := ValidatePattern(pattern); err != nil {
		return err
	}
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("--root %s: %w", root, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--root %s is not a directory", root)
	}
	segs := strings.Split(pattern, "/")
	if skip == nil {
		skip = func(string, string) {}
	}
	return walkDir(ctx, root, "", segs, fn, skip)
}

// walkSequential turns walkAhead off (tests compare the two walks).
var walkSequential = false

func hasMeta(seg string) bool { return strings.ContainsAny(seg, `*?[\`) }

func walkDir(ctx context.Context, dir, rel string, segs []string, fn func(tenant, path string) error, skip func(tenant, reason string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	seg := segs[0]
	if !hasMeta(seg) {
		// A literal segment: one lstat, no directory listing.
		st, err := os.Lstat(filepath.Join(dir, seg))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return visitEntry(ctx, dir, rel, segs, seg, st.Mode(), fn, skip)
	}
	if len(segs) == 2 && !walkSequential {
		// The tenant directories' level: they are read ahead, several
		// at a time (walkAhead).
		return walkAhead(ctx, dir, rel, segs, fn, skip)
	}
	var ferr error // an error of fn (returned as is)
	err := readDir(dir, func(name string, mode fs.FileMode) error {
		if ok, _ := filepath.Match(seg, name); !ok {
			return nil
		}
		if verr := visitEntry(ctx, dir, rel, segs, name, mode, fn, skip); verr != nil {
			ferr = verr
			return verr
		}
		return nil
	})
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", dir, err)
	}
	return nil
}

// visitEntry handles the entry name (of type mode) of dir, which matched
// segs[0]: a tenant when it is the last segment, else a directory to walk.
func visitEntry(ctx context.Context, dir, rel string, segs []string, name string, mode fs.FileMode,
	fn func(tenant, path string) error, skip func(tenant, reason string)) error {
	full := filepath.Join(dir, name)
	relName := name
	if rel != "" {
		relName = path.Join(rel, name)
	}
	if mode&fs.ModeSymlink != 0 {
		skip(relName, "symlink (never followed below the root)")
		return nil
	}
	if len(segs) == 1 {
		switch {
		case mode.IsRegular():
			if !utf8.ValidString(relName) {
				skip(relName, "name is not valid UTF-8 (cannot be carried in a job)")
				return nil
			}
			return fn(relName, full)
		case !mode.IsDir():
			skip(relName, "not a regular file")
		}
		return nil
	}
	if mode.IsDir() {
		return walkDir(ctx, full, relName, segs[1:], fn, skip)
	}
	return nil
}
