//go:build unix

package tenants

import (
	"errors"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

type fileID struct{ dev, ino uint64 }

func sameID(a, b fileID) bool { return a == b }

func modeOf(st *unix.Stat_t) fs.FileMode {
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// classify turns an errno met on the way into notFound or badEntry.
func classify(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return &notFound{err: err}
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EMLINK):
		return errSymlink(err)
	case errors.Is(err, unix.ENOTDIR):
		return &badEntry{reason: "a component of its path is not a directory", err: err}
	case errors.Is(err, unix.EXDEV):
		return &badEntry{reason: "it resolves outside the tenant root", err: err}
	}
	return err
}

// resolveWalk opens root, then each directory of tenant with openat(2)
// O_DIRECTORY|O_NOFOLLOW (a symlinked directory fails with ELOOP or
// ENOTDIR), and lstats the last component with fstatat(AT_SYMLINK_NOFOLLOW).
// tenant was checked by fleet.CheckTenant: no '..', so nothing leaves root.
func resolveWalk(root, tenant string) (fileID, error) {
	dfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fileID{}, &badEntry{reason: "cannot open the tenant root", err: err}
	}
	defer func() { unix.Close(dfd) }()
	segs := strings.Split(tenant, "/")
	for _, seg := range segs[:len(segs)-1] {
		nfd, err := unix.Openat(dfd, seg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				// A symlink (O_NOFOLLOW|O_DIRECTORY) or a file: say which.
				var st unix.Stat_t
				if unix.Fstatat(dfd, seg, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && modeOf(&st)&fs.ModeSymlink != 0 {
					return fileID{}, errSymlink(err)
				}
			}
			return fileID{}, classify(err)
		}
		unix.Close(dfd)
		dfd = nfd
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, segs[len(segs)-1], &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fileID{}, classify(err)
	}
	if m := modeOf(&st); m != 0 {
		if m&fs.ModeSymlink != 0 {
			return fileID{}, errSymlink(nil)
		}
		return fileID{}, errNotRegular(m)
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}
