package outfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func text(s string) func(w io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

// TestWriteNeverReplacesWhatIsNotAFile: a new or regular file is written
// whole with the mode asked; a symlink stays a symlink (the file it names
// is written); a FIFO stays a FIFO and its reader gets the text (as
// /dev/null or /dev/stdout would: `--report /dev/null` once replaced
// /dev/null with a regular file); a directory is refused.
func TestWriteNeverReplacesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	file := filepath.Join(dir, "report.json")
	for _, s := range []string{"first", "second"} {
		if err := Write(file, 0o640, text(s)); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Lstat(file); read(file) != s || st.Mode().Perm() != 0o640 {
			t.Fatalf("file: %q, mode %v", read(file), st.Mode())
		}
	}

	target, link := filepath.Join(dir, "2026-12-07.json"), filepath.Join(dir, "latest.json")
	os.WriteFile(target, []byte("old"), 0o600)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, 0o600, text("new")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(link); st.Mode()&os.ModeSymlink == 0 || read(target) != "new" {
		t.Fatalf("symlink: mode %v, target %q", st.Mode(), read(target))
	}

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(fifo); err != nil {
		t.Fatalf("check of a FIFO nobody reads yet: %v", err)
	}
	got := make(chan string)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- string(b)
	}()
	if err := Write(fifo, 0o600, text("through the pipe")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(fifo); st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: mode %v", st.Mode())
	}
	if s := <-got; s != "through the pipe" {
		t.Fatalf("the FIFO's reader got %q", s)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Fatalf("%d entries in the directory, want 4 (no temporary file left)", len(entries))
	}

	if err := Write(dir, 0o600, text("x")); err == nil || Check(dir) == nil || !errors.Is(err, ErrIsDir) || !errors.Is(Check(dir), ErrIsDir) {
		t.Fatal("a directory was accepted")
	}
	var noDir *NoDirError
	if err := Check(filepath.Join(dir, "missing", "r.json")); err == nil || !errors.As(err, &noDir) || noDir.Dir != filepath.Join(dir, "missing") {
		t.Fatalf("a file in a missing directory was accepted: %v", err)
	}
}
