// Package outfile writes an output file the user named (a report, a schema
// dump) so that a reader never sees half of it, without ever replacing what
// is not a regular file: a new or regular file is written through a
// temporary file beside it and a rename; a symlink is followed (the file it
// names is replaced, the link stays); a device, a pipe or a FIFO (/dev/null,
// /dev/stdout), and anything under /dev or /proc, is written in place, at
// its end; /dev/stdout, /dev/stderr and /dev/fd/N through the process's own
// descriptor (stdout redirected to a file gets the report after what the
// command printed before it, and before what it prints after).
package outfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrIsDir is the refusal of a path that is a directory.
var ErrIsDir = errors.New("is a directory")

// NoDirError is Check's refusal of a file whose directory does not exist.
type NoDirError struct{ Dir string }

func (e *NoDirError) Error() string { return "directory " + e.Dir + " does not exist" }

// Write writes path with write, through a buffer. perm is the mode of a new
// or replaced file.
func Write(path string, perm os.FileMode, write func(w io.Writer) error) error {
	if st, err := os.Stat(path); err == nil {
		switch {
		case st.IsDir():
			return fmt.Errorf("%s: %w", path, ErrIsDir)
		case !st.Mode().IsRegular() || special(path):
			return writeInPlace(path, write)
		}
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := writeAll(f, write); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Check reports whether path can be written by Write, creating nothing that
// stays: a directory is refused, a device or pipe must be writable (by its
// permissions), a file's directory must take a new file.
func Check(path string) error {
	if st, err := os.Stat(path); err == nil {
		switch {
		case st.IsDir():
			return fmt.Errorf("%s: %w", path, ErrIsDir)
		case !st.Mode().IsRegular():
			// Not opened: opening and closing a FIFO would end its reader
			// (end of file) before Write writes to it.
			return writable(path)
		}
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return &NoDirError{Dir: dir}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// special reports a path under /dev or /proc (/dev/stdout redirected to a
// file is a regular file, which the shell holds open: it is written in
// place, never replaced).
func special(path string) bool {
	abs, err := filepath.Abs(path)
	return err == nil && (strings.HasPrefix(abs, "/dev/") || strings.HasPrefix(abs, "/proc/"))
}

func writeInPlace(path string, write func(w io.Writer) error) error {
	if fd, ok := ownFD(path); ok {
		// The process's own descriptor, not a new one: a new one has its
		// own offset, and the command's next line would overwrite the
		// report in a file stdout is redirected to.
		return writeAll(os.NewFile(fd, path), write)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if err := writeAll(f, write); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ownFD returns the descriptor path names in this process: /dev/stdout,
// /dev/stderr, /dev/fd/N, /proc/self/fd/N.
func ownFD(path string) (uintptr, bool) {
	switch path = filepath.Clean(path); path {
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/"} {
		if n, err := strconv.ParseUint(strings.TrimPrefix(path, dir), 10, 31); strings.HasPrefix(path, dir) && err == nil {
			return uintptr(n), true
		}
	}
	return 0, false
}

func writeAll(f *os.File, write func(w io.Writer) error) error {
	w := bufio.NewWriterSize(f, 256<<10)
	if err := write(w); err != nil {
		return err
	}
	return w.Flush()
}
