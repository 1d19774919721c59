package engine

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the pages of path in the page cache (mincore).
func residentPages(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	vec := make([]byte, (len(mem)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestReadHeadReadsNoMore: reading a DB's header brings its first page
// into the page cache, not the kernel's read-ahead of the file (16 KiB and
// more): a fleet status on a cold cache reads what it needs.
func TestReadHeadReadsNoMore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	data := make([]byte, 256<<10)
	copy(data, sqliteMagic)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Sync()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) // out of the page cache
	f.Close()
	if n := residentPages(t, path); n != 0 {
		t.Skipf("this file system keeps the file's pages in memory (%d resident after FADV_DONTNEED): nothing to measure", n)
	}
	var hdr [100]byte
	if n, err := readHead(path, hdr[:]); err != nil || n != 100 || string(hdr[:len(sqliteMagic)]) != sqliteMagic {
		t.Fatalf("readHead: %d bytes, %v", n, err)
	}
	if n := residentPages(t, path); n != 1 {
		t.Fatalf("%d pages of the file in the page cache after reading its header, want 1", n)
	}
}
