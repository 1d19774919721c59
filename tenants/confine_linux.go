package tenants

import (
	"errors"
	"io/fs"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 turned out to be unavailable (kernel older
// than 5.6: ENOSYS; a seccomp filter: EPERM or ENOSYS).
var noOpenat2 atomic.Bool

// resolveBeneath: openat2(root, tenant, O_PATH|O_NOFOLLOW,
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS): the kernel
// refuses any symlink and any escape from root; then fstat must show a
// regular file. Falls back to resolveWalk where openat2 is not allowed.
func resolveBeneath(root, tenant string) (fileID, error) {
	if noOpenat2.Load() {
		return resolveWalk(root, tenant)
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fileID{}, &badEntry{reason: "cannot open the tenant root", err: err}
	}
	defer unix.Close(rfd)
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	for range 8 {
		fd, err = unix.Openat2(rfd, tenant, &how)
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			break // EAGAIN: a rename raced the lookup; try again
		}
	}
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		noOpenat2.Store(true)
		return resolveWalk(root, tenant)
	}
	if err != nil {
		return fileID{}, classify(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileID{}, err
	}
	if m := modeOf(&st); m != 0 {
		if m&fs.ModeSymlink != 0 { // the trailing symlink itself (O_PATH|O_NOFOLLOW)
			return fileID{}, errSymlink(nil)
		}
		return fileID{}, errNotRegular(m)
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}
