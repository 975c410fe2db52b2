package simulator

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/internal/wake"
)

// Cluster is one simulated AKS cluster: nodes, services and their replicas,
// and the cluster's front-end (one loopback address shared by every service,
// as on AKS).
type Cluster struct {
	sim      *Simulator
	opts     Options
	name     string
	shape    driver.ClusterShape
	attached bool
	resource string

	router  *frontend.Router
	ln      net.Listener
	baseURL string
	tls     *tlsFront // nil until SetTLS; under mu

	kickCh  chan struct{}
	kmu     sync.Mutex      // guards kicked and kickAll
	kicked  map[string]bool // services the next woken pass must look at
	kickAll bool            // the next woken pass must look at every service
	stopCh  chan struct{}
	wg      sync.WaitGroup
	probeWG sync.WaitGroup // probes in flight, for Sync

	mu       sync.Mutex
	nodes    []*node
	services map[string]*service
	nextID   int
	state    driver.ProvisioningState
	stopped  bool

	changes wake.Broadcaster // woken when sig changes (Watch)
	sig     statusSig        // what the last reconcile saw of every service's state
}

var _ driver.Cluster = (*Cluster)(nil)

func newCluster(s *Simulator, name string, shape driver.ClusterShape, attached bool) (*Cluster, error) {
	if shape.AgentCount <= 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "agent_count %d: must be a positive integer", shape.AgentCount)
	}
	if shape.VCPUs <= 0 || shape.MemoryGB <= 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "vm_size %q: the simulator needs its vCPU and memory figures", shape.VMSize)
	}
	c := &Cluster{
		sim: s, opts: s.opts, name: name, shape: shape, attached: attached,
		kickCh:   make(chan struct{}, 1),
		stopCh:   make(chan struct{}),
		services: map[string]*service{},
		state:    driver.StateCreating,
	}
	prefix := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(shape.VMSize, "Standard_"), "standard_"))
	c.nodes = newNodes(strings.ReplaceAll(prefix, "_", "")+"-"+name, shape.AgentCount, shape.VCPUs, shape.MemoryGB, shape.GPUs, shape.FPGAs, shape.GPUModel)
	c.router = frontend.New(&frontend.Options{Logger: s.opts.Logger, Clock: s.opts.Clock})
	ln, err := net.Listen("tcp", net.JoinHostPort(s.opts.Address, "0"))
	if err != nil {
		return nil, errcode.Wrap(errcode.Unavailable, fmt.Errorf("simulated cluster %q: front-end cannot listen: %w", name, err))
	}
	c.ln = ln
	c.baseURL = "http://" + ln.Addr().String()
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		_ = c.router.Serve(ln)
	}()
	go func() {
		defer c.wg.Done()
		c.loop()
	}()
	c.state = driver.StateSucceeded
	return c, nil
}

// Name is the compute target's name.
func (c *Cluster) Name() string { return c.name }

// BaseURL is the cluster's front-end address, http://127.0.0.1:PORT.
func (c *Cluster) BaseURL() string { return c.baseURL }

// Router is the cluster's front-end, for metrics and load figures.
func (c *Cluster) Router() *frontend.Router { return c.router }

// Status reports the cluster's provisioning state and shape.
func (c *Cluster) Status(ctx context.Context) (driver.ClusterStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := driver.ClusterStatus{State: c.state, Shape: c.shape}
	c.tlsStatus(&st)
	return st, nil
}

// Detach forgets the cluster. An attached cluster's services keep running on
// Azure; in the simulator nothing outlives the process, so Detach stops them
// too.
func (c *Cluster) Detach(ctx context.Context) error {
	c.shutdown()
	c.sim.forget(c)
	return nil
}

// Delete deletes a cluster the simulator provisioned. Attached clusters are
// only detached on Azure, so Delete refuses them with Unimplemented, as the
// driver contract says.
func (c *Cluster) Delete(ctx context.Context) error {
	if c.attached {
		return errcode.Errorf(errcode.Unimplemented, "compute target %q is attached, not created by aksml: detach it instead of deleting it", c.name)
	}
	c.mu.Lock()
	c.state = driver.StateDeleting
	c.mu.Unlock()
	c.changes.Notify()
	c.shutdown()
	c.sim.forget(c)
	return nil
}

// shutdown stops the loop, the front-end and every replica, and waits.
func (c *Cluster) shutdown() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		c.wg.Wait()
		return
	}
	c.stopped = true
	var all []*instance
	for _, s := range c.services {
		for _, v := range s.versions {
			for _, r := range append(slices.Clone(v.replicas), v.retired...) {
				if r.inst != nil {
					all = append(all, r.inst)
				}
			}
		}
	}
	c.mu.Unlock()
	close(c.stopCh)
	for _, inst := range all {
		inst.stop(false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = c.router.Shutdown(ctx)
	cancel()
	c.wg.Wait()
}

// kick wakes the control loop for a pass over every service.
func (c *Cluster) kick() {
	c.kmu.Lock()
	c.kickAll = true
	c.kmu.Unlock()
	c.wakeLoop()
}

// kickService wakes the control loop for a pass over service name: its
// spec was applied, or one of its replicas became ready or exited.
func (c *Cluster) kickService(name string) {
	c.kmu.Lock()
	if c.kicked == nil {
		c.kicked = map[string]bool{}
	}
	c.kicked[name] = true
	c.kmu.Unlock()
	c.wakeLoop()
}

func (c *Cluster) wakeLoop() {
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
}

// Sync runs one pass of the control loop now and waits for the liveness
// probes it started, then runs another pass to act on their results. Tests
// that step a fake clock call it to have the cluster act on the new time
// without waiting for the loop's next tick.
func (c *Cluster) Sync() {
	c.reconcile()
	c.probeWG.Wait()
	c.reconcile()
}

func (c *Cluster) loop() {
	t := c.opts.Clock.NewTicker(c.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-c.stopCh:
			return
		case <-c.kickCh:
			c.kmu.Lock()
			all, names := c.kickAll, c.kicked
			c.kickAll, c.kicked = false, nil
			c.kmu.Unlock()
			if !all {
				c.reconcileOnly(names)
				continue
			}
		case <-t.C():
		}
		c.reconcile()
	}
}

// ApplyService creates or updates a service; see driver.Cluster.
func (c *Cluster) ApplyService(ctx context.Context, spec *driver.ServiceSpec) error {
	if spec == nil || spec.Name == "" || len(spec.Versions) == 0 {
		return errcode.New(errcode.InvalidArgument, "service spec needs a name and at least one version")
	}
	if err := c.checkCapabilities(spec); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errcode.Errorf(errcode.Unavailable, "compute target %q is stopped", c.name)
	}
	now := c.opts.Clock.Now()
	s := c.services[spec.Name]
	if s == nil {
		s = &service{name: spec.Name, versions: map[string]*version{}}
		c.services[spec.Name] = s
	}
	s.apply(c, cloneSpec(spec), now)
	// Publish at once: a new key or auth mode is in force when
	// ApplyService returns (the old key is rejected from then on).
	c.publish(s)
	s.routeDirty = false
	c.changes.Notify()
	c.kickService(spec.Name)
	return nil
}

// checkCapabilities refuses what no node of this cluster could ever have,
// with the message Kubernetes would eventually give, so callers learn at
// once. Capacity that is merely used up is not checked here: that is the
// Unschedulable state.
func (c *Cluster) checkCapabilities(spec *driver.ServiceSpec) error {
	for _, v := range spec.Versions {
		if v.Replica.Image != "" && c.opts.Engine == nil {
			return errcode.Errorf(errcode.FailedPrecondition,
				"service %q version %q runs image %s as containers, but the simulator has no Docker engine: set simulator.Options.Engine (docker.NewEngine, package image/docker), or deploy without DeployOptions.Image to run replicas in process",
				spec.Name, v.Name, v.Replica.Image)
		}
	}
	return nil
}

// DeleteService removes a service and stops its replicas.
func (c *Cluster) DeleteService(ctx context.Context, name string) error {
	c.mu.Lock()
	s, ok := c.services[name]
	if !ok {
		c.mu.Unlock()
		return errcode.Errorf(errcode.NotFound, "service %q not found on compute target %q", name, c.name)
	}
	delete(c.services, name)
	var all []*instance
	for _, v := range s.versions {
		for _, r := range v.replicas {
			r.retiring = true
			c.release(r)
			if r.inst != nil {
				all = append(all, r.inst)
			}
		}
		v.replicas = nil
	}
	c.router.RemoveRoute(name)
	c.mu.Unlock()
	c.changes.Notify()
	for _, inst := range all {
		inst.stop(false)
	}
	return nil
}

// ServiceStatus reports a service's state.
func (c *Cluster) ServiceStatus(ctx context.Context, name string) (*driver.ServiceStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.services[name]
	if !ok {
		return nil, errcode.Errorf(errcode.NotFound, "service %q not found on compute target %q", name, c.name)
	}
	s.evaluate(c, c.opts.Clock.Now())
	st := &driver.ServiceStatus{
		Name: name, State: s.state, Message: s.message, Generation: s.spec.Generation,
		ScoringURI: c.scoringURI(name, ""), SwaggerURI: c.swaggerURI(name, ""),
	}
	for _, vn := range s.order {
		v := s.versions[vn]
		vs := driver.VersionStatus{Name: vn, State: v.state, Message: v.message, Desired: v.desired}
		for _, r := range v.replicas {
			vs.Replicas++
			vs.Restarts += r.restarts
			if r.state == replicaReady {
				vs.Ready++
			}
		}
		vs.ServesTraffic = vs.Ready > 0
		if s.spec.IsEndpoint {
			vs.ScoringURI = c.scoringURI(name, vn)
		}
		st.Versions = append(st.Versions, vs)
	}
	return st, nil
}

// Watch returns a channel woken whenever a reconcile pass sees a service
// change state, message or replica counts, and after every ApplyService,
// DeleteService and Delete; see driver.Cluster.
func (c *Cluster) Watch(ctx context.Context) <-chan struct{} {
	return c.changes.Subscribe(ctx)
}

// signal wakes watchers when what status reads report has changed since
// the last call. Caller holds c.mu, after evaluating every service.
//
// It runs on every full pass of the control loop, so it only hashes: each
// service's status fields (FNV-1a) are mixed and summed, an order-free
// fingerprint of the cluster that needs no sorting, formatting or
// allocation. With 1,000 services the string it replaced made signal half
// of the idle control loop's CPU. Being a sum, it is also updated by a pass
// over a few services (reconcileOnly) from their parts alone.
func (c *Cluster) signal() {
	var sig statusSig
	for _, s := range c.services {
		s.sig = s.statusSig()
		sig.sum += s.sig
		sig.n++
	}
	if sig != c.sig {
		c.sig = sig
		c.changes.Notify()
	}
}

// statusSig is the service's part of signal's fingerprint.
func (s *service) statusSig() uint64 {
	h := newFNV().str(s.name).int(s.spec.Generation).str(string(s.state)).str(s.message)
	for _, vn := range s.order {
		v := s.versions[vn]
		h = h.str(vn).str(string(v.state)).int(int64(v.desired)).int(int64(v.readyCount()))
		for _, r := range v.replicas {
			h = h.int(int64(r.state)).int(int64(r.restarts))
		}
	}
	return mix64(uint64(h))
}

// statusSig is signal's fingerprint of every service's status.
type statusSig struct {
	sum uint64
	n   int
}

// fnv is a 64-bit FNV-1a hash built up field by field.
type fnv uint64

func newFNV() fnv { return 14695981039346656037 }

func (h fnv) byte(b byte) fnv { return (h ^ fnv(b)) * 1099511628211 }

// str hashes s and a terminator, so that fields cannot run into each other.
func (h fnv) str(s string) fnv {
	for i := 0; i < len(s); i++ {
		h = h.byte(s[i])
	}
	return h.byte(0xff)
}

func (h fnv) int(x int64) fnv {
	for i := 0; i < 8; i++ {
		h = h.byte(byte(x >> (8 * i)))
	}
	return h
}

// mix64 is splitmix64's finalizer: it spreads a service's hash over all
// bits before the fingerprint sums them.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (c *Cluster) scoringURI(name, version string) string {
	if version != "" {
		return c.scoringBase() + "/api/v1/service/" + name + "/versions/" + version + "/score"
	}
	return c.scoringBase() + "/api/v1/service/" + name + "/score"
}

func (c *Cluster) swaggerURI(name, version string) string {
	u := c.scoringURI(name, version)
	return strings.TrimSuffix(u, "/score") + "/swagger.json"
}

// ServiceLogs returns the last tail lines of every replica's log, replicas in
// name order; the log of a crashed replica's last run is kept.
func (c *Cluster) ServiceLogs(ctx context.Context, name string, tail int, init bool) ([]string, error) {
	c.mu.Lock()
	s, ok := c.services[name]
	if !ok {
		c.mu.Unlock()
		return nil, errcode.Errorf(errcode.NotFound, "service %q not found on compute target %q", name, c.name)
	}
	type source struct {
		id             string
		inst           *instance
		last, lastInit []string
	}
	var srcs []source
	for _, vn := range s.order {
		for _, r := range s.versions[vn].replicas {
			inst, last, lastInit := r.logSource()
			srcs = append(srcs, source{r.id, inst, last, lastInit})
		}
	}
	c.mu.Unlock()
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].id < srcs[j].id })
	var out []string
	for _, src := range srcs {
		var lines []string
		switch {
		case src.inst != nil:
			lines = src.inst.be.logs(tail, init)
		case init:
			lines = lastN(src.lastInit, tail)
		default:
			lines = lastN(src.last, tail)
		}
		for _, line := range lines {
			out = append(out, src.id+": "+line)
		}
	}
	if tail > 0 && len(out) > tail {
		out = out[len(out)-tail:]
	}
	return out, nil
}

// IssueToken returns a token for a token-auth service.
func (c *Cluster) IssueToken(ctx context.Context, name string) (driver.Token, error) {
	c.mu.Lock()
	s, ok := c.services[name]
	var mode driver.AuthMode
	if ok {
		mode = s.spec.Auth.Mode
	}
	c.mu.Unlock()
	if !ok {
		return driver.Token{}, errcode.Errorf(errcode.NotFound, "service %q not found on compute target %q", name, c.name)
	}
	if mode != driver.AuthToken {
		return driver.Token{}, errcode.Errorf(errcode.FailedPrecondition, "service %q does not use token auth (token_auth_enabled is false)", name)
	}
	return c.issueToken(name)
}

// release gives a replica's node resources back. Caller holds c.mu.
func (c *Cluster) release(r *replica) {
	if r.node != nil {
		r.node.allocated = r.node.allocated.sub(r.req)
		r.node = nil
	}
}
