package frontend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// replica is the router's live state for one Replica: its connections and
// in-flight count. It is keyed by Replica.ID and survives route updates.
type replica struct {
	id    string
	host  string // HOST:PORT
	conns connPool

	inflight atomic.Int32
	ready    atomic.Bool
	member   atomic.Bool // still part of the version
	breaker  breaker     // open for a while after a failed dial
}

func newReplica(id, host string) *replica {
	r := &replica{id: id, host: host}
	r.conns.host = host
	return r
}

// Host is the replica's HOST:PORT.
func (r *replica) Host() string { return r.host }

// Member reports whether the replica is still one of its version's.
func (r *replica) Member() bool { return r.member.Load() }

// usable reports whether the replica may get a new request now. *now is the
// time in unix ns, read from clock on first need (0 until then).
func (r *replica) usable(now *int64, clock func() time.Time) bool {
	return r.ready.Load() && r.member.Load() && r.breaker.allows(now, clock)
}

// pool is a version's set of replicas with a per-replica concurrency cap and
// a FIFO queue of requests waiting for a slot. Taking a free slot is
// lock-free (atomic counters over an immutable member list); the mutex only
// guards the wait queue and updates.
type pool struct {
	members  atomic.Pointer[[]*replica] // current replicas, in route order
	maxConc  atomic.Int32
	queueMax atomic.Int64 // ns
	timeout  atomic.Int64 // scoring timeout, ns
	next     atomic.Uint32
	queued   atomic.Int64
	nwaiters atomic.Int32

	clock func() time.Time // for breakers

	mu      sync.Mutex
	byID    map[string]*replica
	waiters []*waiter
}

type waiter struct {
	ch chan *replica // buffered 1: the granted replica
}

var (
	errNoReady    = errors.New("no ready replica")
	errOverloaded = errors.New("overloaded")
)

func newPool(clock func() time.Time) *pool {
	p := &pool{byID: map[string]*replica{}, clock: clock}
	p.members.Store(&[]*replica{})
	p.maxConc.Store(DefaultMaxConcurrentPerReplica)
	p.queueMax.Store(int64(DefaultMaxQueueWait))
	p.timeout.Store(int64(DefaultScoringTimeout))
	return p
}

// scoringTimeout is the version's current scoring timeout.
func (p *pool) scoringTimeout() time.Duration { return time.Duration(p.timeout.Load()) }

// pick takes a slot on the usable replica with the fewest requests in flight
// below the cap (scanning from a rotating start, so ties go round robin).
// It returns nil and whether any replica is usable at all.
func (p *pool) pick() (*replica, bool) {
	ms := *p.members.Load()
	n := len(ms)
	if n == 0 {
		return nil, false
	}
	var now int64
	maxc := p.maxConc.Load()
	for tries := 0; tries < 4; tries++ {
		start := int(p.next.Add(1)) % n
		var best *replica
		bestN := int32(0)
		any := false
		for k := 0; k < n; k++ {
			rep := ms[(start+k)%n]
			if !rep.usable(&now, p.clock) {
				continue
			}
			any = true
			c := rep.inflight.Load()
			if c < maxc && (best == nil || c < bestN) {
				best, bestN = rep, c
				if c == 0 {
					break
				}
			}
		}
		if best == nil {
			return nil, any
		}
		if best.inflight.CompareAndSwap(bestN, bestN+1) {
			return best, true
		}
	}
	// Heavy contention on the counters: take any free slot.
	for _, rep := range ms {
		if !rep.usable(&now, p.clock) {
			continue
		}
		for c := rep.inflight.Load(); c < maxc; c = rep.inflight.Load() {
			if rep.inflight.CompareAndSwap(c, c+1) {
				return rep, true
			}
		}
	}
	return nil, p.anyUsable()
}

func (p *pool) anyUsable() bool {
	var now int64
	for _, rep := range *p.members.Load() {
		if rep.usable(&now, p.clock) {
			return true
		}
	}
	return false
}

// tryAcquire takes a slot without waiting, or returns nil.
func (p *pool) tryAcquire() *replica {
	rep, _ := p.pick()
	return rep
}

// acquire takes a slot on a replica, waiting up to the version's queue time;
// queued reports whether it waited. It returns errNoReady when no replica is
// usable, errOverloaded when the wait ran out, or ctx's error.
func (p *pool) acquire(ctx context.Context) (rep *replica, queued bool, err error) {
	rep, any := p.pick()
	if rep != nil {
		return rep, false, nil
	}
	if !any {
		return nil, false, errNoReady
	}
	// Queue, then look again: a slot freed between the first look and
	// joining the queue would otherwise be missed.
	w := &waiter{ch: make(chan *replica, 1)}
	p.mu.Lock()
	p.waiters = append(p.waiters, w)
	p.nwaiters.Add(1)
	p.mu.Unlock()
	p.queued.Add(1)
	defer p.queued.Add(-1)
	if rep, _ := p.pick(); rep != nil {
		if p.leave(w) {
			return rep, true, nil
		}
		// A slot was granted meanwhile too: keep one.
		p.release(<-w.ch)
		return rep, true, nil
	}

	t := time.NewTimer(time.Duration(p.queueMax.Load()))
	defer t.Stop()
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case rep := <-w.ch:
		return rep, true, nil
	case <-t.C:
	case <-done:
	}
	if !p.leave(w) {
		return <-w.ch, true, nil // granted while timing out
	}
	if ctx != nil && ctx.Err() != nil {
		return nil, true, ctx.Err()
	}
	if !p.anyUsable() {
		return nil, true, errNoReady
	}
	return nil, true, errOverloaded
}

// leave removes w from the queue; false means w was already granted a slot.
func (p *pool) leave(w *waiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.nwaiters.Add(-1)
			return true
		}
	}
	return false
}

// release returns rep's slot and hands free slots to waiters.
func (p *pool) release(rep *replica) {
	left := rep.inflight.Add(-1)
	if p.nwaiters.Load() > 0 {
		p.handoff()
	}
	if left == 0 && !rep.member.Load() {
		rep.conns.closeIdle()
	}
}

// handoff grants free slots to waiters in FIFO order.
func (p *pool) handoff() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.waiters) > 0 {
		rep, _ := p.pick()
		if rep == nil {
			return
		}
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.nwaiters.Add(-1)
		w.ch <- rep
	}
}

// eject marks rep unusable for ejectFor after a failed dial.
func (p *pool) eject(rep *replica) { rep.breaker.trip(p.clock()) }

// counts returns the number of member replicas, of usable ones, and the
// requests in flight on them.
func (p *pool) counts() (replicas, ready, inflight int) {
	var now int64
	ms := *p.members.Load()
	for _, rep := range ms {
		if rep.usable(&now, p.clock) {
			ready++
		}
		inflight += int(rep.inflight.Load())
	}
	return len(ms), ready, inflight
}

// update installs a version's replicas and limits. Replicas whose ID stays
// keep their in-flight count and connections; a replica whose URL changed is
// replaced. It reports whether any replica is ready.
func (p *pool) update(v *Version) bool {
	maxConc := v.MaxConcurrentPerReplica
	if maxConc <= 0 {
		maxConc = DefaultMaxConcurrentPerReplica
	}
	queue := v.MaxQueueWait
	if queue <= 0 {
		queue = DefaultMaxQueueWait
	}
	timeout := v.ScoringTimeout
	if timeout <= 0 {
		timeout = DefaultScoringTimeout
	}
	p.mu.Lock()
	p.maxConc.Store(int32(min(maxConc, 1<<30)))
	p.queueMax.Store(int64(queue))
	p.timeout.Store(int64(timeout))
	members := make([]*replica, 0, len(v.Replicas))
	byID := make(map[string]*replica, len(v.Replicas))
	anyReady := false
	for _, r := range v.Replicas {
		host, _ := replicaHost(r.URL) // validated
		rep := p.byID[r.ID]
		if rep == nil || rep.host != host {
			rep = newReplica(r.ID, host)
		}
		if r.Ready && !rep.ready.Load() {
			rep.breaker.reset()
		}
		rep.ready.Store(r.Ready)
		rep.member.Store(true)
		anyReady = anyReady || r.Ready
		members = append(members, rep)
		byID[r.ID] = rep
	}
	var gone []*replica
	for id, rep := range p.byID {
		if byID[id] != rep {
			rep.member.Store(false)
			if rep.inflight.Load() == 0 {
				gone = append(gone, rep)
			}
		}
	}
	p.byID = byID
	p.members.Store(&members)
	p.mu.Unlock()
	p.handoff() // new or newly ready replicas serve the queue at once
	for _, rep := range gone {
		rep.conns.closeIdle()
	}
	return anyReady
}

// close marks every replica gone and drops idle connections (the version
// was removed).
func (p *pool) close() {
	p.mu.Lock()
	ms := *p.members.Load()
	for _, rep := range ms {
		rep.member.Store(false)
	}
	p.mu.Unlock()
	for _, rep := range ms {
		rep.conns.closeIdle()
	}
}

// closeIdle drops idle connections of every replica, keeping the pool usable.
func (p *pool) closeIdle() {
	for _, rep := range *p.members.Load() {
		rep.conns.closeIdle()
	}
}
