package fleettest

import "syscall"

// procAttr makes a test's nats-server die with the test binary (a test that
// times out does not run its cleanups).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
