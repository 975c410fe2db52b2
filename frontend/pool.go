package frontend

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// replica is the router's live state for one Replica: its connection pool
// and in-flight count. It is keyed by Replica.ID and survives route updates.
type replica struct {
	id   string
	host string // HOST:PORT
	hc   *fasthttp.HostClient

	// Guarded by pool.mu.
	inflight     int
	ready        bool
	member       bool      // still part of the version
	ejectedUntil time.Time // after a failed dial, skipped until then

	// conns records the local address of every open connection to the
	// replica with its dial time, to tell a reused connection from a fresh
	// one when a request fails before the first response byte.
	conns sync.Map // string -> time.Time
}

// ejectFor is how long a replica whose dial failed is skipped, unless a route
// update marks it ready again first.
const ejectFor = time.Second

func newReplica(id, host string) *replica {
	r := &replica{id: id, host: host}
	r.hc = &fasthttp.HostClient{
		Addr: host,
		// The pool caps concurrency per replica; this only bounds sockets.
		MaxConns: 1 << 16,
		// Below common keep-alive timeouts (gunicorn: 2 s), so the router
		// rarely reuses a connection the replica is about to close.
		MaxIdleConnDuration:           time.Second,
		ReadBufferSize:                16 << 10,
		WriteBufferSize:               16 << 10,
		MaxResponseBodySize:           0,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		// The router decides about retries itself (see forward).
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		Dial: func(addr string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{err}
			}
			key := c.LocalAddr().String()
			r.conns.Store(key, time.Now())
			return &trackedConn{Conn: c, r: r, key: key}, nil
		},
	}
	return r
}

// freshSince reports whether the connection with local address local was
// dialed at or after t (so it was not a reused keep-alive connection).
func (r *replica) freshSince(local net.Addr, t time.Time) bool {
	if local == nil {
		return true
	}
	v, ok := r.conns.Load(local.String())
	if !ok {
		// Closed already: it was removed by Close; treat as fresh (no retry).
		return true
	}
	return !v.(time.Time).Before(t)
}

type trackedConn struct {
	net.Conn
	r    *replica
	key  string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		// Keep the entry briefly: the request that saw the close still
		// needs it to classify the error.
		r, key := c.r, c.key
		time.AfterFunc(time.Second, func() { r.conns.Delete(key) })
	})
	return c.Conn.Close()
}

type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// pool is a version's set of replicas with a per-replica concurrency cap and
// a FIFO queue of requests waiting for a slot.
type pool struct {
	mu       sync.Mutex
	members  []*replica // current replicas, in route order
	byID     map[string]*replica
	maxConc  int
	queueMax time.Duration
	timeout  atomic.Int64 // scoring timeout, ns
	next     int          // round-robin start
	waiters  []*waiter

	queued atomic.Int64
}

type waiter struct {
	ch chan *replica // buffered 1: the granted replica
}

var (
	errNoReady    = errors.New("no ready replica")
	errOverloaded = errors.New("overloaded")
)

func newPool() *pool {
	return &pool{byID: map[string]*replica{}}
}

// usable reports whether rep can get a new request now. Needs p.mu.
func (p *pool) usable(rep *replica, now time.Time) bool {
	return rep.ready && rep.member && (rep.ejectedUntil.IsZero() || now.After(rep.ejectedUntil))
}

// anyUsableLocked reports whether some replica can take requests. Needs p.mu.
func (p *pool) anyUsableLocked(now time.Time) bool {
	for _, rep := range p.members {
		if p.usable(rep, now) {
			return true
		}
	}
	return false
}

// pickLocked returns the usable replica with the fewest in-flight requests
// below the cap (ties broken round robin), and whether any replica is usable
// at all. Needs p.mu.
func (p *pool) pickLocked(now time.Time) (*replica, bool) {
	n := len(p.members)
	var best *replica
	any := false
	for k := 0; k < n; k++ {
		rep := p.members[(p.next+k)%n]
		if !p.usable(rep, now) {
			continue
		}
		any = true
		if rep.inflight < p.maxConc && (best == nil || rep.inflight < best.inflight) {
			best = rep
			if rep.inflight == 0 {
				break
			}
		}
	}
	if best != nil {
		p.next++
		if p.next >= n {
			p.next = 0
		}
		best.inflight++
	}
	return best, any
}

// scoringTimeout is the version's current scoring timeout.
func (p *pool) scoringTimeout() time.Duration { return time.Duration(p.timeout.Load()) }

// tryAcquire takes a slot without waiting, or returns nil.
func (p *pool) tryAcquire() *replica {
	p.mu.Lock()
	rep, _ := p.pickLocked(time.Now())
	p.mu.Unlock()
	return rep
}

// acquire takes a slot on a replica, waiting up to the version's queue time.
// It returns errNoReady when no replica is usable, errOverloaded when the
// wait ran out, or ctx's error.
func (p *pool) acquire(ctx context.Context) (*replica, error) {
	p.mu.Lock()
	rep, any := p.pickLocked(time.Now())
	if rep != nil {
		p.mu.Unlock()
		return rep, nil
	}
	if !any {
		p.mu.Unlock()
		return nil, errNoReady
	}
	w := &waiter{ch: make(chan *replica, 1)}
	p.waiters = append(p.waiters, w)
	wait := p.queueMax
	p.mu.Unlock()
	p.queued.Add(1)
	defer p.queued.Add(-1)

	t := time.NewTimer(wait)
	defer t.Stop()
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case rep := <-w.ch:
		return rep, nil
	case <-t.C:
	case <-done:
	}
	// Leave the queue; a slot may have been granted meanwhile.
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	select {
	case rep := <-w.ch:
		return rep, nil
	default:
	}
	if ctx != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	p.mu.Lock()
	any = p.anyUsableLocked(time.Now())
	p.mu.Unlock()
	if !any {
		return nil, errNoReady
	}
	return nil, errOverloaded
}

// release returns rep's slot, handing it to the first waiter if rep can
// still take requests.
func (p *pool) release(rep *replica) {
	p.mu.Lock()
	rep.inflight--
	p.handoffLocked(time.Now())
	idle := !rep.member && rep.inflight == 0
	p.mu.Unlock()
	if idle {
		rep.hc.CloseIdleConnections()
	}
}

// handoffLocked grants free slots to waiters in FIFO order. Needs p.mu.
func (p *pool) handoffLocked(now time.Time) {
	for len(p.waiters) > 0 {
		rep, _ := p.pickLocked(now)
		if rep == nil {
			return
		}
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.ch <- rep
	}
}

// eject marks rep unusable for ejectFor after a failed dial.
func (p *pool) eject(rep *replica) {
	p.mu.Lock()
	rep.ejectedUntil = time.Now().Add(ejectFor)
	p.mu.Unlock()
}

// counts returns the number of member replicas and of usable ones.
func (p *pool) counts() (replicas, ready, inflight int) {
	p.mu.Lock()
	now := time.Now()
	for _, rep := range p.members {
		if p.usable(rep, now) {
			ready++
		}
		inflight += rep.inflight
	}
	replicas = len(p.members)
	p.mu.Unlock()
	return
}

// update installs a version's replicas and limits. Replicas whose ID stays
// keep their in-flight count and connections; a replica whose URL changed is
// replaced. It reports whether any replica is ready.
func (p *pool) update(v *Version) bool {
	maxConc := v.MaxConcurrentPerReplica
	if maxConc <= 0 {
		maxConc = DefaultMaxConcurrentPerReplica
	}
	var closeIdle []*replica
	p.mu.Lock()
	p.maxConc = maxConc
	p.queueMax = v.MaxQueueWait
	if p.queueMax <= 0 {
		p.queueMax = DefaultMaxQueueWait
	}
	timeout := v.ScoringTimeout
	if timeout <= 0 {
		timeout = DefaultScoringTimeout
	}
	p.timeout.Store(int64(timeout))
	for _, rep := range p.members {
		rep.member = false
	}
	members := make([]*replica, 0, len(v.Replicas))
	byID := make(map[string]*replica, len(v.Replicas))
	anyReady := false
	for _, r := range v.Replicas {
		host, _ := replicaHost(r.URL) // validated
		rep := p.byID[r.ID]
		if rep == nil || rep.host != host {
			rep = newReplica(r.ID, host)
		}
		if r.Ready && !rep.ready {
			rep.ejectedUntil = time.Time{}
		}
		rep.ready = r.Ready
		rep.member = true
		anyReady = anyReady || r.Ready
		members = append(members, rep)
		byID[r.ID] = rep
	}
	for _, rep := range p.byID {
		if !rep.member && rep.inflight == 0 {
			closeIdle = append(closeIdle, rep)
		}
	}
	p.members, p.byID = members, byID
	if p.next >= len(members) {
		p.next = 0
	}
	p.handoffLocked(time.Now())
	p.mu.Unlock()
	for _, rep := range closeIdle {
		rep.hc.CloseIdleConnections()
	}
	return anyReady
}

// close drops every replica's idle connections (the router is closing or
// the version was removed).
func (p *pool) close() {
	p.mu.Lock()
	reps := make([]*replica, 0, len(p.members))
	for _, rep := range p.members {
		rep.member = false
		reps = append(reps, rep)
	}
	p.mu.Unlock()
	for _, rep := range reps {
		rep.hc.CloseIdleConnections()
	}
}

// closeIdle drops idle connections of every replica, keeping the pool usable.
func (p *pool) closeIdle() {
	p.mu.Lock()
	reps := append([]*replica(nil), p.members...)
	p.mu.Unlock()
	for _, rep := range reps {
		rep.hc.CloseIdleConnections()
	}
}
