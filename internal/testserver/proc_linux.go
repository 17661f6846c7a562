//go:build linux

package testserver

import (
	"errors"
	"syscall"
)

// sysProcAttr returns the attributes of a server process: its own process
// group (so stop can sweep up its children), parentDeath delivered to it if
// the test binary dies without cleaning up (a panic, -timeout, a kill), and
// as's identity when as is not nil.
func sysProcAttr(as *account, parentDeath syscall.Signal) (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: parentDeath}
	if as != nil {
		// Go sets the parent-death signal after changing the credentials,
		// which would otherwise clear it.
		attr.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid}
	}
	return attr, nil
}

// killGroup kills every process left in process group pgid.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// groupAlive reports whether any process of process group pgid exists.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
