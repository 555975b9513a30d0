package services

import "syscall"

// runProcAttr makes a run: process the leader of its own group (so stop and
// timeouts reach its children) and has the kernel kill it when resman dies,
// even by SIGKILL. Pdeathsig is tied to the spawning OS thread; the Go
// runtime does not end threads under unlocked goroutines, so in practice it
// is resman's death.
func runProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// commandProcAttr puts a start, stop or check command in its own group so
// that a timeout kills all it spawned. No Pdeathsig: a start command may be
// mid-way through an init script that must not be cut by resman's death.
func commandProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
