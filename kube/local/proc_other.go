//go:build !linux

package local

import "syscall"

// childAttr is nil outside Linux: a container's process outlives this one
// if it dies without stopping the pod.
func childAttr() *syscall.SysProcAttr { return nil }
