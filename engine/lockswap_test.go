package engine

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// openFDsOn counts this process's descriptors open on path (by inode), to
// know that a waiting acquireLock has opened the lock file.
func openFDsOn(t *testing.T, path string) int {
	t.Helper()
	want, err := os.Stat(path)
	if err != nil {
		return 0
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range ents {
		if fi, err := os.Stat(filepath.Join("/proc/self/fd", e.Name())); err == nil && os.SameFile(fi, want) {
			n++
		}
	}
	return n
}

// A migrator waiting on the lock file while its holder removes it (a failed
// first run removes the lock file it created) must end up holding the lock
// file that is at the path now, not the removed one: a lock on a removed
// file excludes nobody.
func TestLockFollowsReplacedLockFile(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/self/fd to see the waiter's descriptor")
	}
	db := filepath.Join(t.TempDir(), "t.db")
	p := lockPath(db)
	holder, err := openLockFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	type got struct {
		lk  *fileLock
		err error
	}
	done := make(chan got, 1)
	go func() {
		lk, err := acquireLock(context.Background(), db, time.Minute)
		done <- got{lk, err}
	}()
	// Wait until the waiter has the old file open (2 descriptors: ours and its).
	for openFDsOn(t, p) < 2 {
		select {
		case g := <-done:
			t.Fatalf("acquireLock returned while the lock was held: %v", g.err)
		default:
		}
		time.Sleep(time.Millisecond) // polling /proc, not papering over a race
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	holder.Close() // releases the flock on the removed file
	g := <-done
	if g.err != nil {
		t.Fatal(g.err)
	}
	defer g.lk.release()
	if !isCurrentLockFile(g.lk.f, p) {
		t.Fatal("the waiter holds the removed lock file, not the one at the path")
	}
}
