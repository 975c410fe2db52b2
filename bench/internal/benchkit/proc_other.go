//go:build !linux

package benchkit

import "time"

// SelfCPU is not measured outside Linux.
func SelfCPU() time.Duration { return 0 }

// ProcCPU is not measured outside Linux.
func ProcCPU(int) (time.Duration, bool) { return 0, false }

// TreeCPU is not measured outside Linux.
func TreeCPU(int) (time.Duration, bool) { return 0, false }

// TreeRSS is not measured outside Linux.
func TreeRSS(int) (int64, int, bool) { return 0, 0, false }

// TreePSS is not measured outside Linux.
func TreePSS(int) (int64, bool) { return 0, false }
