//go:build !unix

package tenants

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

type fileID struct{ fi os.FileInfo }

func sameID(a, b fileID) bool { return a.fi != nil && b.fi != nil && os.SameFile(a.fi, b.fi) }

// resolveBeneath without openat: Lstat each component from root, refusing
// any symlink (or reparse point) and anything but a regular file at the end.
// A component swapped between two Lstats is the remaining window (see
// docs/operations.md).
func resolveBeneath(root, tenant string) (fileID, error) {
	cur := root
	segs := strings.Split(tenant, "/")
	for i, seg := range segs {
		cur = filepath.Join(cur, seg)
		st, err := os.Lstat(cur)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fileID{}, &notFound{err: err}
			}
			return fileID{}, err
		}
		m := st.Mode()
		if m&fs.ModeSymlink != 0 || m&fs.ModeIrregular != 0 {
			return fileID{}, errSymlink(nil)
		}
		if i < len(segs)-1 {
			if !m.IsDir() {
				return fileID{}, &badEntry{reason: "a component of its path is not a directory"}
			}
			continue
		}
		if !m.IsRegular() {
			return fileID{}, errNotRegular(m)
		}
		return fileID{fi: st}, nil
	}
	return fileID{}, errors.New("empty tenant")
}
