//go:build unix

package outfile

import "syscall"

// writable reports whether this process may write path, by its
// permissions (access(2)), without opening it.
func writable(path string) error {
	return syscall.Access(path, 0x2) // W_OK
}
