package simulator

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/scoring"
)

// service is one deployed web service or endpoint on a cluster.
type service struct {
	name     string
	spec     *driver.ServiceSpec
	versions map[string]*version
	order    []string

	applied     time.Time // when the current generation was applied
	healthyOnce bool      // the current generation reached Healthy
	opFailed    string    // why the current generation's operation failed
	state       driver.State
	message     string
	routeDirty  bool
	sig         uint64 // this service's part of Cluster.sig, as the last pass saw it
}

// version is one version's replicas. A plain web service has one.
type version struct {
	name     string
	spec     driver.VersionSpec
	template string // fingerprint of spec.Replica; a change rolls replicas
	desired  int
	replicas []*replica // current template and older ones still serving
	retired  []*replica // stopping: out of the route, draining
	scaler   *versionScaler
	state    driver.State
	message  string
}

func cloneSpec(s *driver.ServiceSpec) *driver.ServiceSpec {
	out := *s
	out.Tags = maps.Clone(s.Tags)
	out.Versions = slices.Clone(s.Versions)
	for i := range out.Versions {
		out.Versions[i].Replica.Env = maps.Clone(out.Versions[i].Replica.Env)
		out.Versions[i].Replica.Models = slices.Clone(out.Versions[i].Replica.Models)
	}
	return &out
}

// fingerprint identifies what a replica runs: a change rolls the replicas,
// a change of traffic or scale does not.
func fingerprint(t driver.ReplicaTemplate) string {
	h := uintptr(0)
	if t.Handler != nil {
		h = handlerIdentity(t.Handler)
	}
	t.Handler = nil
	keys := slices.Sorted(maps.Keys(t.Env))
	var env strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&env, "%s=%s;", k, t.Env[k])
	}
	t.Env = nil
	return fmt.Sprintf("%x|%s|%+v", h, env.String(), t)
}

// handlerIdentity identifies a NewHandler value. reflect only exposes a
// func's code pointer, which every closure of one function literal shares
// (Echo("v1") and Echo("v2") from one call site, a model loader closing
// over a new path): a new handler built that way would not roll the
// replicas. The address of the closure record tells them apart; the old
// record stays alive (and its address unused) while replicas run it.
func handlerIdentity(f scoring.NewHandler) uintptr {
	return *(*uintptr)(unsafe.Pointer(&f))
}

// apply installs a new spec. Caller holds c.mu.
func (s *service) apply(c *Cluster, spec *driver.ServiceSpec, now time.Time) {
	changed := s.spec == nil || !reflect.DeepEqual(specKey(s.spec), specKey(spec))
	s.spec = spec
	if changed {
		s.applied = now
		s.healthyOnce = false
		s.opFailed = ""
	}
	seen := map[string]bool{}
	s.order = s.order[:0]
	for _, vs := range spec.Versions {
		seen[vs.Name] = true
		s.order = append(s.order, vs.Name)
		v := s.versions[vs.Name]
		if v == nil {
			v = &version{name: vs.Name}
			s.versions[vs.Name] = v
		}
		v.spec = vs
		v.template = fingerprint(vs.Replica)
		v.scaler = newVersionScaler(v.scaler, vs.Scale, vs.Replica.MaxConcurrentPerReplica, now)
		v.desired = v.scaler.desired
		for _, r := range v.replicas {
			r.crashLooped = false
		}
	}
	for name, v := range s.versions {
		if !seen[name] {
			// retire deletes from v.replicas: walk a copy.
			for _, r := range slices.Clone(v.replicas) {
				c.retire(v, r)
			}
			delete(s.versions, name)
		}
	}
	s.routeDirty = true
}

// specKey is the part of a spec whose change starts a new operation. The
// Handler func is compared by identity through fingerprint.
func specKey(s *driver.ServiceSpec) any {
	type vkey struct {
		driver.VersionSpec
		fp string
	}
	keys := make([]vkey, len(s.Versions))
	for i, v := range s.Versions {
		v.Replica = driver.ReplicaTemplate{}
		keys[i] = vkey{v, fingerprint(s.Versions[i].Replica)}
	}
	return []any{s.Name, s.Namespace, s.Description, s.Tags, s.IsEndpoint, s.Auth, keys}
}

// reconcile moves every service toward its spec. It runs on the loop.
func (c *Cluster) reconcile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	now := c.opts.Clock.Now()
	for _, s := range c.services {
		for _, vn := range s.order {
			c.reconcileVersion(s, s.versions[vn], now)
		}
		s.evaluate(c, now)
		if s.routeDirty {
			c.publish(s)
			s.routeDirty = false
		}
	}
	c.signal()
	c.probeDue(now)
}

// reconcileOnly is reconcile for the services names only: what woke the
// loop (kickService) concerns them alone, so a deployment does not pay for
// a pass over every other service of a large cluster. The others' timed
// work (crash back-off, autoscaling, probes) is done by the next tick's
// full pass.
func (c *Cluster) reconcileOnly(names map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	now := c.opts.Clock.Now()
	changed := false
	for name := range names {
		s := c.services[name]
		if s == nil {
			continue
		}
		for _, vn := range s.order {
			c.reconcileVersion(s, s.versions[vn], now)
		}
		s.evaluate(c, now)
		if s.routeDirty {
			c.publish(s)
			s.routeDirty = false
		}
		if h := s.statusSig(); h != s.sig {
			c.sig.sum += h - s.sig
			s.sig = h
			changed = true
		}
	}
	if changed {
		c.changes.Notify()
	}
}

func (c *Cluster) reconcileVersion(s *service, v *version, now time.Time) {
	if d, ok := v.scaler.decide(c, s, v, now); ok && d != v.desired {
		c.opts.Logger.Info("autoscale", "service", s.name, "version", v.name, "from", v.desired, "to", d)
		v.desired = d
	}
	var current, old []*replica
	for _, r := range v.replicas {
		if r.template == v.template {
			current = append(current, r)
		} else {
			old = append(old, r)
		}
	}
	// Scale the current template to desired: add new replicas, or retire
	// the least useful ones (pending, then starting, then newest ready).
	for len(current) < v.desired {
		r := c.newReplica(s, v)
		current = append(current, r)
		v.replicas = append(v.replicas, r)
	}
	if len(current) > v.desired {
		slices.SortStableFunc(current, func(a, b *replica) int { return a.rank() - b.rank() })
		for _, r := range current[v.desired:] {
			c.retire(v, r)
		}
		current = current[:v.desired]
	}
	// Place pending replicas and restart crashed ones whose back-off ended.
	for _, r := range current {
		switch r.state {
		case replicaPending:
			c.schedule(r)
		case replicaCrashed:
			if !now.Before(r.restartAt) {
				c.startReplica(r)
			}
		}
	}
	for _, r := range old {
		if r.state == replicaCrashed && !now.Before(r.restartAt) {
			c.startReplica(r)
		}
	}
	// Rolling update: old replicas leave once every current one is ready.
	if len(old) > 0 {
		ready := 0
		for _, r := range current {
			if r.state == replicaReady {
				ready++
			}
		}
		if ready >= v.desired {
			for _, r := range old {
				c.retire(v, r)
			}
		}
	}
}

// retire takes a replica out of the version: out of the route at once
// (published here, before its drain delay starts, so a slow reconcile pass
// cannot let it stop while the router still sends it requests), then
// stopped after the drain delay. Caller holds c.mu.
func (c *Cluster) retire(v *version, r *replica) {
	v.replicas = slices.DeleteFunc(v.replicas, func(x *replica) bool { return x == r })
	c.release(r)
	r.retiring = true
	wasServing := r.state == replicaReady
	r.state = replicaTerminating
	if s := c.services[r.service]; s != nil && wasServing {
		c.publish(s)
	}
	inst := r.inst
	v.retired = append(v.retired, r)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		inst.stop(wasServing)
		c.mu.Lock()
		v.retired = slices.DeleteFunc(v.retired, func(x *replica) bool { return x == r })
		c.mu.Unlock()
	}()
}

// evaluate computes the service state from its replicas. Caller holds c.mu.
func (s *service) evaluate(c *Cluster, now time.Time) {
	worst := driver.Healthy
	var msgs []string
	allReady := true
	anyUnservable := false
	for _, vn := range s.order {
		v := s.versions[vn]
		v.state, v.message = v.evaluate(c, s)
		if v.state != driver.Healthy {
			allReady = false
		}
		ready := v.readyCount()
		if ready == 0 {
			anyUnservable = true
		}
		if v.state.Worse(worst) {
			worst = v.state
		}
		if v.message != "" {
			if s.spec.IsEndpoint {
				msgs = append(msgs, "version "+vn+": "+v.message)
			} else {
				msgs = append(msgs, v.message)
			}
		}
	}
	msg := strings.Join(msgs, "; ")
	switch {
	case s.opFailed != "":
		s.state, s.message = driver.Failed, s.opFailed
	case allReady:
		s.state, s.message = driver.Healthy, ""
		s.healthyOnce = true
	case s.healthyOnce:
		// The deployment finished; later trouble does not fail it. A
		// service with a version that cannot serve is Unhealthy; one that
		// is merely scaling or replacing a replica stays Healthy.
		if anyUnservable {
			s.state, s.message = driver.Unhealthy, msg
		} else {
			s.state, s.message = driver.Healthy, ""
		}
	case worst == driver.Failed:
		s.opFailed = msg
		s.state, s.message = driver.Failed, msg
	case worst == driver.Unschedulable:
		if now.Sub(s.applied) >= c.opts.UnschedulableTimeout {
			s.opFailed = fmt.Sprintf("Couldn't Schedule because the kubernetes cluster didn't have available resources after trying for %s: %s",
				hms(c.opts.UnschedulableTimeout), msg)
			s.state, s.message = driver.Failed, s.opFailed
		} else {
			s.state, s.message = driver.Unschedulable, msg
		}
	default:
		if now.Sub(s.applied) >= c.opts.DeploymentTimeout {
			s.opFailed = fmt.Sprintf("DeploymentTimedOut: the deployment did not become healthy within %s: %s", hms(c.opts.DeploymentTimeout), msg)
			s.state, s.message = driver.Failed, s.opFailed
		} else {
			s.state, s.message = driver.Transitioning, msg
		}
	}
}

func hms(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

func (v *version) readyCount() int {
	n := 0
	for _, r := range v.replicas {
		if r.state == replicaReady {
			n++
		}
	}
	return n
}

// evaluate gives a version's state: Healthy when every desired replica of
// the current template is ready and no old one remains.
func (v *version) evaluate(c *Cluster, s *service) (driver.State, string) {
	readyCurrent, oldLeft := 0, 0
	var unsched, crash string
	for _, r := range v.replicas {
		if r.template != v.template {
			oldLeft++
			continue
		}
		switch {
		case r.state == replicaReady:
			readyCurrent++
		case r.state == replicaPending && r.reason != "":
			unsched = r.reason
		case r.crashLooped:
			crash = r.crashMessage()
		}
	}
	switch {
	case readyCurrent >= v.desired && oldLeft == 0:
		return driver.Healthy, ""
	case crash != "":
		return driver.Failed, crash
	case unsched != "":
		return driver.Unschedulable, unsched
	case v.readyCount() == 0 && s.healthyOnce:
		return driver.Unhealthy, fmt.Sprintf("no ready replicas (%d desired)", v.desired)
	}
	return driver.Transitioning, fmt.Sprintf("%d of %d replicas ready", readyCurrent, v.desired)
}
