package services

import "strings"

// parseActiveState maps the output of `systemctl is-active UNIT` to a
// service state. Unknown or empty output (no such unit, systemctl
// unreachable) counts as stopped.
func parseActiveState(out string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	switch strings.TrimSpace(first) {
	case "active", "reloading", "refreshing":
		return StateRunning
	case "activating":
		return StateStarting
	case "deactivating":
		return StateStopping
	case "failed":
		return StateFailed
	default: // inactive, maintenance, unknown
		return StateStopped
	}
}
