package services

import "syscall"

// runProcAttr makes a run: process the leader of its own group (so stop and
// timeouts reach its children) and has the kernel kill it when resman dies,
// even by SIGKILL. Pdeathsig is tied to the spawning OS thread; the Go
// runtime does not end threads under unlocked goroutines, so in practice it
// is resman's death. (Start, stop and check commands run through procexec,
// in their own group without Pdeathsig.)
func runProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
