package engine

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// readHead reads the first len(buf) bytes of the file at path with plain
// open/pread/close system calls: os.Open would add descriptor flag and
// poller calls (about ten system calls) per DB, which a fleet status over
// 100,000 DBs pays 100,000 times. O_NONBLOCK: a FIFO put in the DB's place
// since the caller's stat never blocks the read. The descriptor is closed
// like closeRaw (never dropping SQLite's locks).
//
// The descriptor is marked for random access first: otherwise the kernel
// reads ahead 16 KiB of the file for the 100 bytes wanted, and a fleet
// status of 100,000 DBs on a cold cache filled 1.6 GB of page cache (the
// host's applications' cache, evicted) where 430 MB do. (Its time did not
// change measurably on this VM, where the cold walk waits on the number of
// reads, not their size.)
func readHead(path string, buf []byte) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_RANDOM) // advice only: where it is not supported, the read is as before
	n := 0
	for n < len(buf) {
		m, err := syscall.Pread(fd, buf[n:], int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			closeRawFD(path, fd)
			return n, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	closeRawFD(path, fd)
	return n, nil
}

// closeRawFD is closeRaw for a descriptor opened with syscall.Open.
func closeRawFD(path string, fd int) {
	if rawInUse(path) {
		closeRaw(path, os.NewFile(uintptr(fd), path))
		return
	}
	syscall.Close(fd)
}
