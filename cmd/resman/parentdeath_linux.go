package main

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// stopWithParent asks Linux to send this process SIGTERM when its parent
// dies (killing `go run` used to leave the demo running on its ports).
// The signal is tied to the parent thread that forked us; Go keeps its
// threads, so in practice it is the parent process.
func stopWithParent() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		return fmt.Errorf("demo: ask to stop with the parent process: %w", err)
	}
	return nil
}
