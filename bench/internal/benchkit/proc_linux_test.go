package benchkit

import (
	"os"
	"testing"
	"time"
)

func TestProcCPU(t *testing.T) {
	// Spin until this process has used at least two of /proc's ticks.
	start, ok := ProcCPU(os.Getpid())
	if !ok {
		t.Fatal("ProcCPU of this process: not read")
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if c, _ := ProcCPU(os.Getpid()); c-start >= 20*time.Millisecond {
			break
		}
	}
	c, _ := ProcCPU(os.Getpid())
	if c-start < 20*time.Millisecond {
		t.Fatalf("ProcCPU moved by %v after spinning", c-start)
	}
	// It is this process's time, as SelfCPU counts it (to /proc's tick).
	if self := SelfCPU(); c > self+20*time.Millisecond {
		t.Fatalf("ProcCPU %v is more than the process's own %v", c, self)
	}
	if _, ok := ProcCPU(-1); ok {
		t.Fatal("ProcCPU(-1) read a process")
	}
}
