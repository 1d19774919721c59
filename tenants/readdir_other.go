//go:build !linux

package tenants

import (
	"io"
	"io/fs"
	"os"
)

// readDir calls fn with the name and type of every entry of dir, reading
// it in batches (see the Linux version).
func readDir(dir string, fn func(name string, mode fs.FileMode) error) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(readBatch)
		for _, e := range ents {
			// e.Type() is the entry's own type (lstat): a symlink stays one.
			if ferr := fn(e.Name(), e.Type()); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
