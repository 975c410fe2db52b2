package drivertest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// maxLoadFailures is how many failure messages a Load keeps; it counts
// every failure.
const maxLoadFailures = 100

// Load is a closed-loop load generator for scoring endpoints: each caller
// posts {"caller":C,"i":I} to a scoring URI, waits for the answer and
// posts again, until Stop or the end of its context. It counts the 2xx
// answers by the "tag" an [EchoHandler] puts in them and counts the
// failures (transport errors and other status codes), keeping the first
// messages. Its methods are safe to call while the callers run.
type Load struct {
	total  atomic.Int64
	failed atomic.Int64
	stopCh chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	begun []int64 // per caller: requests started
	ended []int64 // per caller: requests answered
	tags  map[string]int
	last  []string // tags of the most recent answers, newest last
	fails []string
}

// StartLoad starts callers callers posting to uri with hc. It stops them
// when the test ends, if Stop has not been called before.
func StartLoad(ctx context.Context, t testing.TB, hc *http.Client, uri string, callers int) *Load {
	l := &Load{stopCh: make(chan struct{}), tags: map[string]int{},
		begun: make([]int64, callers), ended: make([]int64, callers)}
	for c := range callers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stopCh:
					return
				case <-ctx.Done():
					return
				default:
				}
				l.mu.Lock()
				l.begun[c]++
				l.mu.Unlock()
				r, err := post(ctx, hc, uri, fmt.Sprintf(`{"caller":%d,"i":%d}`, c, i))
				l.record(c, r, err)
			}
		}()
	}
	t.Cleanup(l.Stop)
	return l
}

func (l *Load) record(c int, r reply, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended[c]++
	l.total.Add(1)
	if err != nil || r.code < 200 || r.code > 299 {
		l.failed.Add(1)
		if len(l.fails) < maxLoadFailures {
			l.fails = append(l.fails, fmt.Sprintf("%d %q %v", r.code, r.body, err))
		}
		return
	}
	l.tags[r.tag]++
	l.last = append(l.last, r.tag)
	if len(l.last) > 1000 {
		l.last = slices.Clone(l.last[500:])
	}
}

// Wait blocks until n more requests have been answered (well or not); it
// fails the test if ctx ends first.
func (l *Load) Wait(ctx context.Context, t testing.TB, n int64) {
	t.Helper()
	target := l.total.Load() + n
	for l.total.Load() < target {
		if ctx.Err() != nil {
			t.Fatalf("load: %d of %d requests before the deadline", l.total.Load(), target)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Settle starts counting afresh from requests sent after the call: it
// waits until every caller has had an answer to a request it started after
// the call, then drops the counts (as Take). Answers to requests already in
// flight when the state under test changed are not counted after Settle.
func (l *Load) Settle(ctx context.Context, t testing.TB) {
	t.Helper()
	l.mu.Lock()
	mark := slices.Clone(l.begun)
	l.mu.Unlock()
	for {
		l.mu.Lock()
		done := true
		for c := range mark {
			if l.ended[c] <= mark[c] {
				done = false
			}
		}
		if done {
			l.tags = map[string]int{}
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		select {
		case <-l.stopCh:
			return
		default:
		}
		if ctx.Err() != nil {
			t.Fatalf("load: callers did not settle before the deadline")
		}
		time.Sleep(time.Millisecond)
	}
}

// Total is the number of requests answered so far, failures included.
func (l *Load) Total() int64 { return l.total.Load() }

// Failed is the number of requests that failed so far.
func (l *Load) Failed() int64 { return l.failed.Load() }

// Failures returns the messages (status, body, error) of the first
// failures, at most 100.
func (l *Load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.fails)
}

// Take returns the 2xx answers by tag since the previous Take (or the
// start) and starts counting afresh.
func (l *Load) Take() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.tags
	l.tags = map[string]int{}
	return out
}

// Tail returns the tags of the last n 2xx answers, oldest first (fewer
// if there were fewer; at least the last 500 are kept).
func (l *Load) Tail(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.last[max(len(l.last)-n, 0):])
}

// Stop stops the callers and waits for them to return. It may be called
// more than once.
func (l *Load) Stop() {
	l.mu.Lock()
	select {
	case <-l.stopCh:
	default:
		close(l.stopCh)
	}
	l.mu.Unlock()
	l.wg.Wait()
}
