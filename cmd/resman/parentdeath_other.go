//go:build !linux

package main

// stopWithParent is Linux only; elsewhere the demo ends with Ctrl-C.
func stopWithParent() error { return nil }
