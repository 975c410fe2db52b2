package simulator

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
)

// Fault makes a replica misbehave, for tests of what callers and the
// control plane see.
type Fault struct {
	// Delay is added before every request the replica serves.
	Delay time.Duration
	// Status, when non-zero, is returned for POST /score instead of running
	// the model (for example 500, which callers see as 502).
	Status int
	// FailLiveness makes GET / answer 503, so liveness probes fail and the
	// replica is restarted after failure_threshold probes.
	FailLiveness bool
}

func faultHandler(r *replica, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f := r.fault.Load()
		if f == nil {
			next.ServeHTTP(w, req)
			return
		}
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return
			}
		}
		switch {
		case f.FailLiveness && req.URL.Path == "/":
			http.Error(w, "liveness failure injected", http.StatusServiceUnavailable)
		case f.Status != 0 && req.URL.Path == "/score":
			http.Error(w, `{"error":"fault injected"}`, f.Status)
		default:
			next.ServeHTTP(w, req)
		}
	})
}

// ReplicaInfo describes one replica, for tests and tools.
type ReplicaInfo struct {
	ID       string
	Service  string
	Version  string
	Node     string
	State    string // Pending, ContainerCreating, Running, CrashLoopBackOff
	Reason   string
	Restarts int
	URL      string
}

// Services lists the names of the services deployed on the cluster (web
// services and endpoints), sorted.
func (c *Cluster) Services() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.services))
}

// Replicas lists the replicas of a service, in ID order.
func (c *Cluster) Replicas(service string) ([]ReplicaInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.services[service]
	if !ok {
		return nil, errcode.Errorf(errcode.NotFound, "service %q not found on compute target %q", service, c.name)
	}
	var out []ReplicaInfo
	for _, vn := range s.order {
		for _, r := range s.versions[vn].replicas {
			info := ReplicaInfo{ID: r.id, Service: r.service, Version: r.version, State: r.state.String(),
				Reason: r.reason, Restarts: r.restarts, URL: r.url()}
			if r.node != nil {
				info.Node = r.node.name
			}
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b ReplicaInfo) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out, nil
}

// ReplicaStats returns the data collection (collect_model_data) and
// telemetry (enable_app_insights) counters of a replica's running instance:
// records collected, written, dropped and failed, telemetry records made,
// sent, dropped and failed. A restarted replica counts from zero; a
// replica in a container reports zeros (its counts are on its /metrics).
func (c *Cluster) ReplicaStats(replicaID string) (scoring.Stats, error) {
	c.mu.Lock()
	r, err := c.findReplica(replicaID)
	if err != nil {
		c.mu.Unlock()
		return scoring.Stats{}, err
	}
	inst := r.inst
	c.mu.Unlock()
	if inst == nil {
		return scoring.Stats{}, errcode.Errorf(errcode.FailedPrecondition, "replica %q is not running", replicaID)
	}
	if s, ok := inst.be.(statser); ok {
		return s.stats(), nil
	}
	return scoring.Stats{}, nil
}

func (c *Cluster) findReplica(id string) (*replica, error) {
	for _, s := range c.services {
		for _, v := range s.versions {
			for _, r := range v.replicas {
				if r.id == id {
					return r, nil
				}
			}
		}
	}
	return nil, errcode.Errorf(errcode.NotFound, "replica %q not found on compute target %q", id, c.name)
}

// InjectFault makes a replica misbehave until ClearFault. The fault stays
// with the replica across restarts.
func (c *Cluster) InjectFault(replicaID string, f Fault) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.findReplica(replicaID)
	if err != nil {
		return err
	}
	r.fault.Store(&f)
	return nil
}

// ClearFault removes an injected fault.
func (c *Cluster) ClearFault(replicaID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.findReplica(replicaID)
	if err != nil {
		return err
	}
	r.fault.Store(nil)
	return nil
}

// KillReplica crashes a replica as if its process died: it leaves the
// route at once and restarts (its restart count goes up). It returns when
// the replica has stopped.
func (c *Cluster) KillReplica(ctx context.Context, replicaID string) error {
	c.mu.Lock()
	r, err := c.findReplica(replicaID)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	inst := r.inst
	c.mu.Unlock()
	if inst == nil {
		return errcode.Errorf(errcode.FailedPrecondition, "replica %q is not running", replicaID)
	}
	inst.stop(false)
	return nil
}

// RemoveNode takes a node out of the cluster, as a node failure or a scale
// in would: its replicas stop and are scheduled again elsewhere, or stay
// Pending when nothing else fits.
func (c *Cluster) RemoveNode(ctx context.Context, name string) error {
	c.mu.Lock()
	var victims []*instance
	found := false
	for _, n := range c.nodes {
		if n.name != name || n.removed {
			continue
		}
		found = true
		n.removed = true
		for _, s := range c.services {
			for _, v := range s.versions {
				for _, r := range v.replicas {
					if r.node != n {
						continue
					}
					if r.inst != nil {
						victims = append(victims, r.inst)
						r.inst = nil
					}
					c.release(r)
					r.state = replicaPending
					r.reason = ""
					s.routeDirty = true
				}
			}
		}
	}
	c.mu.Unlock()
	if !found {
		return errcode.Errorf(errcode.NotFound, "node %q not found on compute target %q", name, c.name)
	}
	for _, inst := range victims {
		inst.stop(false)
	}
	c.kick()
	return nil
}

// Nodes lists the cluster's live nodes.
func (c *Cluster) Nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.nodes {
		if !n.removed {
			out = append(out, n.name)
		}
	}
	return out
}
