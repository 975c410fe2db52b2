package scoring

import (
	"bufio"
	"io"
	"sync"
)

// maxLogLine is the longest line kept; longer output is split.
const maxLogLine = 16 << 10

// logBuffer keeps the last lines of a replica's output, plus the output
// written before init finished (the init-only view).
type logBuffer struct {
	mu       sync.Mutex
	capacity int
	ring     []string // circular once full
	next     int      // index of the next write when full
	full     bool
	init     []string
	initOpen bool
	out      io.Writer // optional copy of every line
}

func newLogBuffer(capacity int, out io.Writer) *logBuffer {
	return &logBuffer{capacity: capacity, initOpen: true, out: out}
}

// add appends one line.
func (b *logBuffer) add(line string) {
	b.mu.Lock()
	if b.initOpen && len(b.init) < b.capacity {
		b.init = append(b.init, line)
	}
	if !b.full {
		b.ring = append(b.ring, line)
		if len(b.ring) == b.capacity {
			b.full = true
		}
	} else {
		b.ring[b.next] = line
		b.next = (b.next + 1) % b.capacity
	}
	if b.out != nil {
		_, _ = io.WriteString(b.out, line+"\n")
	}
	b.mu.Unlock()
}

// closeInit freezes the init-only view.
func (b *logBuffer) closeInit() {
	b.mu.Lock()
	b.initOpen = false
	b.mu.Unlock()
}

// lines returns the last tail lines (all when tail <= 0), oldest first.
func (b *logBuffer) lines(tail int, initOnly bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var all []string
	if initOnly {
		all = b.init
	} else if !b.full {
		all = b.ring
	} else {
		all = make([]string, 0, b.capacity)
		all = append(all, b.ring[b.next:]...)
		all = append(all, b.ring[:b.next]...)
	}
	if tail > 0 && tail < len(all) {
		all = all[len(all)-tail:]
	}
	return append([]string(nil), all...)
}

// initMark is the line a worker writes to stderr after init, before it
// reports success; it is not logged.
const initMark = "\x1eaksml-init-done"

// copyLines reads r until EOF, adding each line (without its line ending).
// A line equal to initMark calls onMark instead.
func (b *logBuffer) copyLines(r io.Reader, onMark func()) {
	br := bufio.NewReaderSize(r, 4096)
	var partial []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			done := chunk[len(chunk)-1] == '\n'
			if done {
				chunk = chunk[:len(chunk)-1]
			}
			partial = append(partial, chunk...)
			for len(partial) > maxLogLine {
				b.add(string(partial[:maxLogLine]))
				partial = append(partial[:0], partial[maxLogLine:]...)
			}
			if done {
				if n := len(partial); n > 0 && partial[n-1] == '\r' {
					partial = partial[:n-1]
				}
				if string(partial) == initMark && onMark != nil {
					onMark()
					onMark = nil
				} else {
					b.add(string(partial))
				}
				partial = partial[:0]
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(partial) > 0 {
				b.add(string(partial))
			}
			return
		}
	}
}
