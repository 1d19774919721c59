//go:build !linux

package fleettest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
