package connq

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Fallback is the net/http server an engine hands connections to, serving
// a Queue.
type Fallback struct {
	Server *http.Server
	Queue  *Queue
	done   chan struct{}
}

// StartFallback starts srv on a new Queue that reports addr.
func StartFallback(srv *http.Server, addr net.Addr) *Fallback {
	f := &Fallback{Server: srv, Queue: New(addr), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		_ = srv.Serve(f.Queue)
	}()
	return f
}

// Shutdown closes the queue and shuts the server down gracefully until ctx
// ends, then closes it; it returns when the server has stopped.
func (f *Fallback) Shutdown(ctx context.Context) error {
	f.Queue.Close()
	err := f.Server.Shutdown(ctx)
	if err != nil {
		f.Server.Close()
	}
	<-f.done
	return err
}

// Set is an engine's open connections, for its shutdown.
type Set[C comparable] struct {
	mu      sync.Mutex
	conns   map[C]struct{}
	wg      sync.WaitGroup
	closing atomic.Bool
}

// Add registers c; false (c not registered) once the set is closing.
func (s *Set[C]) Add(c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[C]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// Remove unregisters c, added before.
func (s *Set[C]) Remove(c C) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Close marks the set closing (as Shutdown does first): Add refuses from
// now on.
func (s *Set[C]) Close() {
	s.mu.Lock()
	s.closing.Store(true)
	s.mu.Unlock()
}

// Closing reports whether Close or Shutdown has begun.
func (s *Set[C]) Closing() bool { return s.closing.Load() }

// Len is the number of connections.
func (s *Set[C]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Each calls f for each connection, under the set's lock.
func (s *Set[C]) Each(f func(C)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		f(c)
	}
}

// Shutdown marks the set closing, calls wake for each connection (to end
// the idle ones) and waits until every connection is removed; if ctx ends
// first, it calls kill for each one left and returns ctx's error without
// waiting further.
func (s *Set[C]) Shutdown(ctx context.Context, wake, kill func(C)) error {
	s.Close()
	s.Each(wake)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Each(kill)
		return ctx.Err()
	}
}

// Wait waits until every connection is removed.
func (s *Set[C]) Wait() { s.wg.Wait() }

// Retry reports whether an Accept error is one net/http waits out
// (a timeout, too many open files, an aborted connection) and, if so,
// sleeps the next step of backoff (5 ms doubling to 1 s; reset it to 0
// after a successful Accept).
func Retry(err error, backoff *time.Duration) bool {
	var ne net.Error
	if !(errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED)) {
		return false
	}
	*backoff = min(max(2**backoff, 5*time.Millisecond), time.Second)
	time.Sleep(*backoff)
	return true
}
