//go:build !linux

package main

import (
	"os"
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }

// treeCPU is not measured outside Linux.
func treeCPU(int) (time.Duration, bool) { return 0, false }
