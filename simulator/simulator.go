package simulator

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
)

// Options configure a Simulator. The zero value (or nil) gives the behaviour
// of AKS with its default timings.
type Options struct {
	// Clock drives probes, back-off, autoscaling and deployment timeouts.
	// Tests pass a k8s.io/utils/clock/testing FakeClock and step it.
	// Default: the real clock.
	Clock clock.WithTicker
	// Logger receives the simulator's own events. Default: discard.
	Logger *slog.Logger
	// Tick is how often the control loop looks at the clock. Default 50 ms.
	Tick time.Duration
	// Address is the loopback address clusters listen on. Default 127.0.0.1.
	Address string
	// CrashLoopThreshold is how many consecutive failed starts of a replica
	// put it (and its service) in CrashLoopBackOff. Default 2, as Kubernetes
	// reports CrashLoopBackOff once a restarted container fails again.
	CrashLoopThreshold int
	// BackoffBase and BackoffMax bound the restart back-off of a crashing
	// replica: the first restart is immediate, then base, 2×base, … up to
	// max. Defaults 10 s and 5 min, as the kubelet.
	BackoffBase, BackoffMax time.Duration
	// UnschedulableTimeout is how long a deployment may stay Unschedulable
	// before it fails. Default 5 min (reference §2).
	UnschedulableTimeout time.Duration
	// DeploymentTimeout is how long a deployment may take before it fails
	// with DeploymentTimedOut. Default 20 min (reference §2).
	DeploymentTimeout time.Duration
	// Engine runs replicas whose template names an image as containers
	// (see aml.DeployOptions.Image). Nil means such replicas fail with a
	// clear error; replicas without an image always run in process.
	// Package image/docker's Engine is the implementation (it links the
	// Docker client; programs that run replicas in process do not).
	Engine image.ContainerRunner
	// DrainDelay is how long a replica leaving the service keeps serving
	// after the router stopped sending it new requests, so requests already
	// on their way finish. Default 1 s (real time: it covers network I/O).
	DrainDelay time.Duration
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Clock == nil {
		out.Clock = clock.RealClock{}
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if out.Tick <= 0 {
		out.Tick = 50 * time.Millisecond
	}
	if out.Address == "" {
		out.Address = "127.0.0.1"
	}
	if out.CrashLoopThreshold <= 0 {
		out.CrashLoopThreshold = 2
	}
	if out.BackoffBase <= 0 {
		out.BackoffBase = 10 * time.Second
	}
	if out.BackoffMax <= 0 {
		out.BackoffMax = 5 * time.Minute
	}
	if out.UnschedulableTimeout <= 0 {
		out.UnschedulableTimeout = 5 * time.Minute
	}
	if out.DeploymentTimeout <= 0 {
		out.DeploymentTimeout = 20 * time.Minute
	}
	if out.DrainDelay <= 0 {
		out.DrainDelay = time.Second
	}
	return out
}

// Simulator is an in-process AKS: a driver.Provider whose clusters are
// simulated nodes with real replicas (Go handlers in process, score.py in
// Python worker processes) behind a real HTTP front-end on loopback.
//
// It is a first-class backend, not a test double: it passes the same
// conformance suite (compute/drivertest) as the Kubernetes backend.
type Simulator struct {
	opts Options

	mu        sync.Mutex
	clusters  map[string]*Cluster
	resources map[string]string // attached resource id → cluster name
	closed    bool
}

// New returns a Simulator. Close it to stop every cluster it runs.
func New(opts *Options) *Simulator {
	return &Simulator{opts: opts.withDefaults(), clusters: map[string]*Cluster{}, resources: map[string]string{}}
}

var _ driver.Provider = (*Simulator)(nil)

// Provision starts a simulated cluster of shape.AgentCount nodes sized from
// the VM-size catalog. The cluster is Succeeded when its front-end listens,
// Backend names the simulator in compute target records ("simulator").
func (s *Simulator) Backend() string { return "simulator" }

// Ephemeral is true: the simulator's clusters live in this process, so
// their records go stale when it exits (see compute.Ephemeral).
func (s *Simulator) Ephemeral() bool { return true }

// which Provision waits for (milliseconds).
func (s *Simulator) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	return s.start(ctx, name, shape, "")
}

// Attach makes a simulated cluster stand in for an existing AKS cluster
// identified by ref.ResourceID (or a kubeconfig context). It has three
// Standard_D3_v2 nodes unless the simulator is told otherwise. The same
// resource attached twice, under any names, is refused with AlreadyExists:
// on Azure a second attachment silently breaks the first.
func (s *Simulator) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	key := ref.ResourceID
	if key == "" {
		key = "kubeconfig:" + ref.Kubeconfig + "#" + ref.Context
	}
	shape := driver.ClusterShape{AgentCount: 3, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14, Purpose: "FastProd"}
	return s.start(ctx, name, shape, key)
}

func (s *Simulator) start(ctx context.Context, name string, shape driver.ClusterShape, resource string) (driver.Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, errcode.Wrap(errcode.DeadlineExceeded, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errcode.New(errcode.FailedPrecondition, "simulator is closed")
	}
	if _, ok := s.clusters[name]; ok {
		return nil, errcode.Errorf(errcode.AlreadyExists, "compute target %q already exists in the simulator", name)
	}
	if resource != "" {
		if other, ok := s.resources[resource]; ok {
			return nil, errcode.Errorf(errcode.AlreadyExists,
				"cluster %s is already attached as compute target %q; attach it once (a second attachment breaks the first on Azure)", resource, other)
		}
	}
	c, err := newCluster(s, name, shape, resource != "")
	if err != nil {
		return nil, err
	}
	s.clusters[name] = c
	if resource != "" {
		s.resources[resource] = name
		c.resource = resource
	}
	return c, nil
}

// Cluster returns a running cluster by name.
func (s *Simulator) Cluster(ctx context.Context, name string) (driver.Cluster, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[name]
	if !ok {
		return nil, errcode.Errorf(errcode.NotFound, "compute target %q is not running in the simulator", name)
	}
	return c, nil
}

// SimCluster returns a running cluster with the simulator's own methods
// (fault injection, replica listing).
func (s *Simulator) SimCluster(name string) (*Cluster, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[name]
	return c, ok
}

func (s *Simulator) forget(c *Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clusters[c.name] == c {
		delete(s.clusters, c.name)
	}
	if c.resource != "" {
		delete(s.resources, c.resource)
	}
}

// Close stops every cluster: replicas, Python workers and front-ends. It
// waits until all of them are gone.
func (s *Simulator) Close() error {
	s.mu.Lock()
	s.closed = true
	cs := make([]*Cluster, 0, len(s.clusters))
	for _, c := range s.clusters {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.shutdown()
		s.forget(c)
	}
	return nil
}
