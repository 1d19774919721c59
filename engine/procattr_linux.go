package engine

import "syscall"

// childProcAttr puts a script in its own process group and kills it when the
// migrator dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
