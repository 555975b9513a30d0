//go:build unix && !linux

package services

import "syscall"

// runProcAttr makes a run: process the leader of its own group. Without
// Linux's Pdeathsig, it may outlive a resman killed by SIGKILL.
func runProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
