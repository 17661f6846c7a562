//go:build !linux

package testserver

import (
	"errors"
	"syscall"
)

// sysProcAttr returns the attributes of a server process. Off Linux there
// is no parent-death signal, so a test binary that dies without cleaning up
// leaves its servers running, and running as another user is not supported.
func sysProcAttr(as *account, _ syscall.Signal) (*syscall.SysProcAttr, error) {
	if as != nil {
		return nil, errors.New("running a server as another user is supported on Linux only")
	}
	return nil, nil
}

// killGroup does nothing off Linux: stop has already ended the process.
func killGroup(int) {}

// groupAlive reports false off Linux, where it is not checked.
func groupAlive(int) bool { return false }
