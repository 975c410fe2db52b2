package benchkit

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU is this process's CPU time (user and system).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcCPU is the CPU time (user and system) of process pid alone, not
// counting its children.
func ProcCPU(pid int) (time.Duration, bool) {
	st, ok := readStat(strconv.Itoa(pid))
	return time.Duration(st.ticks) * 10 * time.Millisecond, ok
}

// procStat is what /proc/PID/stat says of one process.
type procStat struct {
	ppid  int
	ticks int64 // user + system CPU, in USER_HZ (100 on Linux)
	rssKB int64
}

// readStat reads /proc/PID/stat of the process named pid.
func readStat(pid string) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 22 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	return procStat{ppid: ppid, ticks: ut + st, rssKB: rss * int64(os.Getpagesize()) / 1024}, true
}

// tree returns root and all its descendants, with their /proc/PID/stat.
func tree(root int) (map[int]procStat, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	children := map[int][]int{}
	stats := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(e.Name())
		if !ok {
			continue
		}
		children[st.ppid] = append(children[st.ppid], pid)
		stats[pid] = st
	}
	if _, ok := stats[root]; !ok {
		return nil, false
	}
	out := map[int]procStat{}
	stack := []int{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out[p] = stats[p]
		stack = append(stack, children[p]...)
	}
	return out, true
}

// TreeCPU returns the user+system CPU time of pid and all its descendants.
func TreeCPU(root int) (time.Duration, bool) {
	t, ok := tree(root)
	var total int64
	for _, s := range t {
		total += s.ticks
	}
	return time.Duration(total) * 10 * time.Millisecond, ok
}

// TreeRSS returns the resident memory of pid and all its descendants, in
// KiB, and how many processes that is. Pages that processes share (a
// forked child's, the executable's) count once per process, as ps shows
// them.
func TreeRSS(root int) (kb int64, procs int, ok bool) {
	t, ok := tree(root)
	for _, s := range t {
		kb += s.rssKB
	}
	return kb, len(t), ok
}

// TreePSS returns the proportional set size of pid and all its
// descendants, in KiB: each page shared by k processes counts 1/k in each,
// so the sum is the memory the tree really holds. It reads
// /proc/PID/smaps_rollup (Linux 4.14 and later).
func TreePSS(root int) (kb int64, ok bool) {
	t, ok := tree(root)
	for pid := range t {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
		if err != nil {
			continue // the process ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, found := strings.CutPrefix(line, "Pss:"); found {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				kb += n
				break
			}
		}
	}
	return kb, ok
}
