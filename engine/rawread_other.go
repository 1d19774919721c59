//go:build !linux

package engine

import (
	"io"
	"os"
)

// readHead reads the first len(buf) bytes of the file at path (see the
// Linux version).
func readHead(path string, buf []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	n, err := io.ReadFull(f, buf)
	closeRaw(path, f)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return n, err
}
