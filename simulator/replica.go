package simulator

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
)

type replicaState int

const (
	replicaPending     replicaState = iota // not placed on a node
	replicaStarting                        // running init()
	replicaReady                           // serving
	replicaCrashed                         // exited; restarts after back-off
	replicaTerminating                     // retired, draining
)

func (s replicaState) String() string {
	return [...]string{"Pending", "ContainerCreating", "Running", "CrashLoopBackOff", "Terminating"}[s]
}

// replica is one pod: placed on a node, running a scoring server on its own
// loopback port. A crash restarts the same replica (a container restart),
// keeping its node and counting restarts.
type replica struct {
	id       string
	service  string
	version  string
	template string
	tmpl     driver.ReplicaTemplate
	req      resources
	node     *node

	// Guarded by the cluster's mutex.
	state       replicaState
	reason      string // scheduler message while pending
	restarts    int
	failures    int // consecutive failed starts
	crashLooped bool
	restartAt   time.Time
	startedAt   time.Time
	retiring    bool
	inst        *instance // the running instance, nil when not running
	lastLogs    []string  // log of the last instance that exited
	lastInit    []string
	lastErr     string
	probe       probeState

	fault atomic.Pointer[Fault]
}

// instance is one run of a replica: a scoring server and its listener.
type instance struct {
	srv     *scoring.Server
	httpSrv *http.Server
	url     string
	done    chan struct{} // closed when the instance has stopped
	kill    chan bool     // true = graceful drain, false = crash
	once    sync.Once
}

type probeState struct {
	next      time.Time
	inFlight  bool
	failures  int
	successes int
}

// rank orders replicas for removal: the least useful first.
func (r *replica) rank() int {
	switch r.state {
	case replicaPending:
		return 0
	case replicaCrashed:
		return 1
	case replicaStarting:
		return 2
	}
	return 3
}

func (r *replica) url() string {
	if r.inst == nil {
		return ""
	}
	return r.inst.url
}

// logSource returns what logs needs, read under the cluster lock.
func (r *replica) logSource() (inst *instance, last, lastInit []string) {
	return r.inst, r.lastLogs, r.lastInit
}

func (r *replica) crashMessage() string {
	msg := fmt.Sprintf("CrashLoopBackOff: replica %s failed to start %d times: %s", r.id, r.failures, r.lastErr)
	if len(r.lastLogs) > 0 {
		tail := r.lastLogs
		if len(tail) > 20 {
			tail = tail[len(tail)-20:]
		}
		msg += "\nlast log lines:\n" + strings.Join(tail, "\n")
	}
	return msg
}

func lastN(lines []string, n int) []string {
	if n > 0 && len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// stop ends the running instance: gracefully (drain, then stop) or at once.
// It returns when the instance has stopped.
func (inst *instance) stop(graceful bool) {
	if inst == nil {
		return
	}
	inst.once.Do(func() { inst.kill <- graceful })
	<-inst.done
}

// newReplica creates a pending replica. Caller holds c.mu.
func (c *Cluster) newReplica(s *service, v *version) *replica {
	c.nextID++
	t := v.spec.Replica
	r := &replica{
		id:       fmt.Sprintf("%s-%s-%d", s.name, v.name, c.nextID),
		service:  s.name,
		version:  v.name,
		template: v.template,
		tmpl:     t,
		req:      requestOf(t.CPU, t.MemoryGB, t.GPUs, t.FPGAs),
		state:    replicaPending,
	}
	if !s.spec.IsEndpoint {
		r.id = fmt.Sprintf("%s-%d", s.name, c.nextID)
	}
	c.schedule(r)
	return r
}

// schedule places a pending replica and starts it. Caller holds c.mu.
func (c *Cluster) schedule(r *replica) {
	n, why := place(c.nodes, r.req)
	if n == nil {
		r.reason = why
		return
	}
	r.reason = ""
	r.node = n
	n.allocated = n.allocated.add(r.req)
	c.startReplica(r)
}

// startReplica starts a new instance of r: its scoring server and listener
// are made here, init runs in the instance's goroutine. Caller holds c.mu.
func (c *Cluster) startReplica(r *replica) {
	now := c.opts.Clock.Now()
	r.state = replicaStarting
	r.startedAt = now
	r.probe = probeState{next: now.Add(r.tmpl.Probe.InitialDelay)}
	inst := &instance{done: make(chan struct{}), kill: make(chan bool, 1)}
	t := r.tmpl
	srv, err := scoring.NewServer(scoring.Config{
		Handler:        t.Handler,
		EntryScript:    t.EntryScript,
		SourceDir:      t.SourceDir,
		ModelDir:       t.ModelDir,
		Interpreter:    t.Interpreter,
		Env:            t.Env,
		Workers:        t.Workers,
		ScoringTimeout: t.ScoringTimeout,
		Logger:         c.opts.Logger,
	})
	var ln net.Listener
	if err == nil {
		ln, err = net.Listen("tcp", net.JoinHostPort(c.opts.Address, "0"))
		if err != nil {
			err = errcode.Wrap(errcode.Unavailable, fmt.Errorf("replica %s cannot listen: %w", r.id, err))
		}
	}
	if err != nil {
		close(inst.done)
		r.inst = inst
		c.crashed(r, inst, err, nil, nil)
		return
	}
	inst.srv = srv
	inst.url = "http://" + ln.Addr().String()
	inst.httpSrv = &http.Server{Handler: faultHandler(r, srv), ReadHeaderTimeout: 10 * time.Second}
	r.inst = inst
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(inst.done)
		c.runInstance(r, inst, ln)
	}()
}

// runInstance runs one instance until it is stopped or crashes.
func (c *Cluster) runInstance(r *replica, inst *instance, ln net.Listener) {
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = inst.httpSrv.Serve(ln)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := inst.srv.Start(ctx); err != nil {
		c.stopInstance(inst, served, false)
		c.exited(r, inst, err)
		return
	}
	select {
	case <-inst.srv.InitDone():
		if err := inst.srv.Err(); err != nil {
			c.stopInstance(inst, served, false)
			c.exited(r, inst, err)
			return
		}
		c.mu.Lock()
		if r.inst == inst && r.state == replicaStarting {
			r.state = replicaReady
			r.failures = 0
			r.crashLooped = false
			if s := c.services[r.service]; s != nil {
				s.routeDirty = true
			}
		}
		c.mu.Unlock()
		c.kick()
	case graceful := <-inst.kill:
		c.stopInstance(inst, served, graceful)
		c.exited(r, inst, errKilled)
		return
	case <-c.stopCh:
		c.stopInstance(inst, served, false)
		return
	}
	select {
	case graceful := <-inst.kill:
		c.stopInstance(inst, served, graceful)
		c.exited(r, inst, errKilled)
	case <-c.stopCh:
		c.stopInstance(inst, served, false)
	}
}

var errKilled = fmt.Errorf("replica killed")

// stopInstance stops an instance's HTTP server and scoring server. A
// graceful stop first waits for the drain delay (so the router's new table
// is in force) and lets in-flight requests finish.
func (c *Cluster) stopInstance(inst *instance, served chan struct{}, graceful bool) {
	if graceful {
		t := time.NewTimer(c.opts.DrainDelay)
		select {
		case <-t.C:
		case <-c.stopCh:
		}
		t.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = inst.httpSrv.Shutdown(ctx)
		cancel()
	}
	if inst.httpSrv != nil {
		_ = inst.httpSrv.Close()
		<-served
	}
	if inst.srv != nil {
		_ = inst.srv.Close()
	}
}

// exited records that an instance ended: a retired replica simply goes; any
// other replica crashed and restarts after back-off.
func (c *Cluster) exited(r *replica, inst *instance, err error) {
	logs := inst.srv.Logs(200, false)
	initLogs := inst.srv.Logs(200, true)
	c.mu.Lock()
	defer c.kick()
	defer c.mu.Unlock()
	c.crashed(r, inst, err, logs, initLogs)
}

// crashed is exited with the lock held.
func (c *Cluster) crashed(r *replica, inst *instance, err error, logs, initLogs []string) {
	if r.inst != inst {
		return
	}
	r.inst = nil
	r.lastLogs, r.lastInit = logs, initLogs
	if r.retiring || c.stopped {
		return
	}
	wasReady := r.state == replicaReady
	r.state = replicaCrashed
	r.restarts++
	if err != nil {
		r.lastErr = err.Error()
	}
	if !wasReady {
		r.failures++
	}
	if r.failures >= c.opts.CrashLoopThreshold {
		r.crashLooped = true
	}
	// Kubernetes restarts a container at once the first time, then backs
	// off exponentially.
	backoff := time.Duration(0)
	if r.failures > 1 {
		backoff = c.opts.BackoffBase << (r.failures - 2)
		if backoff > c.opts.BackoffMax || backoff <= 0 {
			backoff = c.opts.BackoffMax
		}
	}
	r.restartAt = c.opts.Clock.Now().Add(backoff)
	if s := c.services[r.service]; s != nil {
		s.routeDirty = true
	}
}
