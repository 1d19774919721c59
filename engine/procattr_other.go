//go:build !linux

package engine

import "syscall"

// childProcAttr puts a script in its own process group.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
