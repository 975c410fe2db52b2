package simulator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/compute/driver"
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

// instance is one run of a replica: a scoring server in process (Go
// handler or Python workers behind a loopback listener) or a container.
type instance struct {
	be   backend
	url  string
	done chan struct{} // closed when the instance has stopped
	kill chan bool     // true = graceful drain, false = crash
	once sync.Once
}

// backend is what runs one instance.
type backend interface {
	// start begins init and returns the replica's base URL.
	start(ctx context.Context) (string, error)
	// initDone is closed when init has finished or failed; err says which.
	initDone() <-chan struct{}
	err() error
	// exited is closed if the instance dies by itself (a container exit).
	exited() <-chan struct{}
	logs(tail int, init bool) []string
	// stop ends the instance; graceful lets in-flight requests finish.
	stop(graceful bool)
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

// startReplica starts a new instance of r; init runs in the instance's
// goroutine. Caller holds c.mu.
func (c *Cluster) startReplica(r *replica) {
	now := c.opts.Clock.Now()
	r.state = replicaStarting
	r.startedAt = now
	r.probe = probeState{next: now.Add(r.tmpl.Probe.InitialDelay)}
	inst := &instance{done: make(chan struct{}), kill: make(chan bool, 1)}
	be, err := c.newBackend(r)
	if err != nil {
		close(inst.done)
		inst.be = failedBackend{}
		r.inst = inst
		c.crashed(r, inst, err, nil, nil)
		return
	}
	inst.be = be
	r.inst = inst
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(inst.done)
		c.runInstance(r, inst)
	}()
}

// newBackend picks how the replica runs: a container when its template
// names an image, in process otherwise.
func (c *Cluster) newBackend(r *replica) (backend, error) {
	if r.tmpl.Image != "" {
		return c.newContainerBackend(r)
	}
	return c.newLocalBackend(r)
}

// runInstance runs one instance until it is stopped or crashes.
func (c *Cluster) runInstance(r *replica, inst *instance) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, err := inst.be.start(ctx)
	if err != nil {
		inst.be.stop(false)
		c.exited(r, inst, err)
		return
	}
	c.mu.Lock()
	inst.url = url
	c.mu.Unlock()
	select {
	case <-inst.be.initDone():
		if err := inst.be.err(); err != nil {
			inst.be.stop(false)
			c.exited(r, inst, err)
			return
		}
		c.mu.Lock()
		if r.inst == inst && r.state == replicaStarting {
			r.state = replicaReady
			r.failures = 0
			r.crashLooped = false
			if s := c.services[r.service]; s != nil {
				// Publish now, not on the next reconcile: once a status
				// read can report the replica ready (and the service
				// Healthy), the router must already send it traffic.
				c.publish(s)
				s.routeDirty = false
			}
		}
		c.mu.Unlock()
		c.kickService(r.service)
	case graceful := <-inst.kill:
		c.stopInstance(inst, graceful)
		c.exited(r, inst, errKilled)
		return
	case <-c.stopCh:
		inst.be.stop(false)
		return
	}
	select {
	case graceful := <-inst.kill:
		c.stopInstance(inst, graceful)
		c.exited(r, inst, errKilled)
	case <-inst.be.exited():
		c.exited(r, inst, errors.New("replica exited"))
		inst.be.stop(false)
	case <-c.stopCh:
		inst.be.stop(false)
	}
}

// stopInstance stops an instance. A graceful stop first waits for the
// drain delay, so the router's new table (without this replica) is in
// force, then lets in-flight requests finish.
func (c *Cluster) stopInstance(inst *instance, graceful bool) {
	if graceful {
		t := time.NewTimer(c.opts.DrainDelay)
		select {
		case <-t.C:
		case <-c.stopCh:
			graceful = false
		}
		t.Stop()
	}
	inst.be.stop(graceful)
}

var errKilled = fmt.Errorf("replica killed")

// exited records that an instance ended: a retired replica simply goes; any
// other replica crashed and restarts after back-off.
func (c *Cluster) exited(r *replica, inst *instance, err error) {
	logs := inst.be.logs(200, false)
	initLogs := inst.be.logs(200, true)
	c.mu.Lock()
	defer c.kickService(r.service)
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
