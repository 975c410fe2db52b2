package benchkit

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SysProcAttr gives a server its own process group (KillGroup ends all of
// it) and kills it if the benchmark dies.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// KillGroup kills the process group p leads, then p.
func KillGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}

// TreeCPU returns the user+system CPU time of pid and all its descendants.
func TreeCPU(root int) (time.Duration, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	children := map[int][]int{}
	ticks := map[int]int64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		children[ppid] = append(children[ppid], pid)
		ticks[pid] = ut + st
	}
	if _, ok := ticks[root]; !ok {
		return 0, false
	}
	var total int64
	stack := []int{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		total += ticks[p]
		stack = append(stack, children[p]...)
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(total) * 10 * time.Millisecond, true
}
