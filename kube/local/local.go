package local

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/kube/controlplane"
	"github.com/aksml/aksml/scoring"
)

// Defaults of Options.
const (
	// DefaultRestartBackOff is the first wait before a crashed container
	// restarts; it doubles up to DefaultMaxRestartBackOff, as the
	// kubelet's does.
	DefaultRestartBackOff    = 10 * time.Second
	DefaultMaxRestartBackOff = 5 * time.Minute
	// DefaultDrainDelay is how long a deleted pod keeps serving after it is
	// reported not ready, so the front-end stops sending to it first.
	DefaultDrainDelay = time.Second
	// DefaultStartupProbeInterval is how often a container's readiness
	// probe runs until the container is first ready.
	DefaultStartupProbeInterval = 100 * time.Millisecond
	// PodCIDR is the pod network Kubernetes sees; pod 10.244.A.B listens
	// on the loopback address 127.N.A.B of this host (Cluster.PodAddr).
	PodCIDR = "10.244.0.0/16"
)

// Options configure a local cluster. Nil or the zero value gives the
// defaults.
type Options struct {
	// BinDir holds the control-plane binaries scripts/kubebins builds;
	// empty means controlplane.BinDir().
	BinDir string
	// Clock is the driver's and the front-end's clock: crash-loop, image
	// pull and unschedulable thresholds, token issue and expiry. Default
	// the real clock. Given one, the front-end's pods run in this process,
	// where they can read it, rather than as child processes. Pods, probes
	// and back-off always run on real time.
	Clock clock.PassiveClock
	// Logger receives the cluster's own events; default discard.
	Logger *slog.Logger
	// RestartBackOff and MaxRestartBackOff bound a crashed container's
	// restart back-off; DrainDelay and StartupProbeInterval as the
	// constants above.
	RestartBackOff, MaxRestartBackOff time.Duration
	DrainDelay                        time.Duration
	StartupProbeInterval              time.Duration
	// FrontEndAddr is the host address the front-end's load balancer
	// listens on for HTTP; default 127.0.0.1 on a free port.
	// FrontEndTLSAddr is where it listens for HTTPS; default a free port
	// on FrontEndAddr's host.
	FrontEndAddr    string
	FrontEndTLSAddr string
	// Namespace is where services go when their spec names none; default
	// kube.DefaultNamespace.
	Namespace string
	// Dir, when set, keeps the cluster's state there (etcd's data, the
	// admin kubeconfig Dir/admin.kubeconfig, the control plane's address)
	// instead of a temporary directory that Close removes: starting again
	// on the same Dir brings back every service, as a restarted AKS
	// control plane does. Pods are started anew on the nodes.
	Dir string
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
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.RestartBackOff <= 0 {
		out.RestartBackOff = DefaultRestartBackOff
	}
	if out.MaxRestartBackOff <= 0 {
		out.MaxRestartBackOff = DefaultMaxRestartBackOff
	}
	if out.DrainDelay <= 0 {
		out.DrainDelay = DefaultDrainDelay
	}
	if out.StartupProbeInterval <= 0 {
		out.StartupProbeInterval = DefaultStartupProbeInterval
	}
	if out.FrontEndAddr == "" {
		out.FrontEndAddr = "127.0.0.1:0"
	}
	return out
}

// Cluster is a local AKS: a Kubernetes control plane on loopback, one
// virtual-kubelet node per agent of the shape (sized and labelled as AKS
// labels its nodes, GPUs and their taint included) whose pods really run,
// the in-cluster front-end (cmd/aksml-fe's router and watches) behind a
// loopback load balancer, and the kube driver applying the same manifests
// it applies to AKS. It is a driver.Cluster.
//
// Pods run on this host. A replica of a Go model runs its handler in this
// process (it is code of this process) on the pod's own loopback address; a
// replica of an entry script runs the aksml scoring server as a child
// process (this program re-executed, see the package documentation) with
// the service's source directory, models and interpreter; a front-end pod
// runs cmd/aksml-fe's program as a child process the same way (in this
// process when Options.Clock is given). Everything listens on 127.x.y.z
// only.
type Cluster struct {
	driver.Cluster // the kube driver attached to the control plane

	name  string
	opts  Options
	shape driver.ClusterShape
	cp    *controlplane.ControlPlane
	lb    *loadBalancer
	// probeClient probes pods; keep-alives off so probes leave no
	// connections behind.
	probeClient *http.Client
	started     time.Duration
	// clockInjected: Options.Clock was given, so the front-end runs in
	// this process where it can read that clock.
	clockInjected bool

	mu      sync.Mutex
	octet   int // second octet of the pods' loopback addresses
	freeIPs map[string]bool
	seq     int
	images  map[string]*image // image name → what runs it
	last    map[string]string // namespace/service/version → its current image
	closed  bool
}

// image is what a container of an image runs: a service version's replica
// template.
type image struct {
	tmpl   driver.ReplicaTemplate
	sample scoring.Handler // an instance of tmpl.Handler, to compare re-applies
}

// Start starts a local cluster of the given shape (AgentCount nodes of
// VMSize with VCPUs, MemoryGB and GPUs) and returns when its front-end
// serves. It needs the control-plane binaries of scripts/kubebins (a clear
// FailedPrecondition error otherwise) and no Docker engine. Close stops
// everything.
func Start(ctx context.Context, name string, shape driver.ClusterShape, opts *Options) (*Cluster, error) {
	began := time.Now()
	o := opts.withDefaults()
	if shape.AgentCount <= 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "local cluster %q: agent_count %d must be at least 1", name, shape.AgentCount)
	}
	if shape.VCPUs <= 0 || shape.MemoryGB <= 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "local cluster %q: vm_size %q needs vCPUs and memory (got %d and %g GB)", name, shape.VMSize, shape.VCPUs, shape.MemoryGB)
	}
	cp, err := controlplane.New(ctx, &controlplane.Options{BinDir: o.BinDir, Dir: o.Dir})
	if err != nil {
		return nil, fmt.Errorf("local cluster %q: %w", name, err)
	}
	c := &Cluster{
		name: name, opts: o, shape: shape, cp: cp,
		clockInjected: opts != nil && opts.Clock != nil,
		probeClient:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		octet:         pickOctet(cp.IP), freeIPs: map[string]bool{},
		images: map[string]*image{}, last: map[string]string{},
	}
	fail := func(err error) (*Cluster, error) {
		_ = c.Close()
		return nil, fmt.Errorf("local cluster %q: %w", name, err)
	}
	// A restarted cluster's pods ran in a process that is gone: delete
	// them so their controllers make new ones, which the nodes run.
	if o.Dir != "" {
		if err := deleteBoundPods(ctx, cp.Client); err != nil {
			return fail(err)
		}
	}
	for _, n := range controlplane.NodesForShape(shape) {
		// AKS labels GPU nodes (kubernetes.azure.com/accelerator) but does
		// not taint them, so system pods such as the front-end run on a
		// GPU-only cluster too.
		n.Taints = nil
		p := &pods{node: n.Name, hostIP: cp.IP, c: c, pods: map[string]*podRun{}, client: cp.Client}
		if _, err := cp.RegisterNode(n, p); err != nil {
			return fail(err)
		}
	}
	if c.lb, err = newLoadBalancer(o.FrontEndAddr, o.FrontEndTLSAddr, c); err != nil {
		return fail(err)
	}
	kc, err := kube.New(&kube.Options{
		Clock: o.Clock, Logger: o.Logger, Namespace: o.Namespace,
		ScoringBaseURL: c.lb.url(), ScoringTLSAddress: c.lb.tlsAddr(),
		InstallFrontEnd: true, FrontEndImage: kube.DefaultFrontEndImage,
	}).Attach(ctx, name, driver.ClusterRef{Kubeconfig: cp.Kubeconfig, Context: "kubetest"})
	if err != nil {
		return fail(err)
	}
	c.Cluster = kc
	if err := c.lb.run(ctx); err != nil {
		return fail(err)
	}
	c.started = time.Since(began)
	o.Logger.Info("local cluster: ready", "name", name, "nodes", shape.AgentCount, "frontend", c.lb.url(), "frontendTLS", c.lb.tlsAddr(), "took", c.started)
	return c, nil
}

// pickOctet chooses the second octet of the pods' loopback addresses,
// other than the control plane's.
func pickOctet(cpIP string) int {
	ip := net.ParseIP(cpIP).To4()
	o := int(ip[1])%200 + 30
	if o == int(ip[1]) {
		o++
	}
	return o
}

// allocIP returns a free pod address: the loopback address the pod
// listens on and the pod IP Kubernetes sees (10.244.A.B ↔ 127.N.A.B).
func (c *Cluster) allocIP() (loopback, podIP string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		c.seq++
		a, b := (c.seq/250)%250, c.seq%250+1
		lo := fmt.Sprintf("127.%d.%d.%d", c.octet, a, b)
		if c.freeIPs[lo] {
			continue
		}
		c.freeIPs[lo] = true
		return lo, fmt.Sprintf("10.244.%d.%d", a, b)
	}
}

func (c *Cluster) releaseIP(lo string) {
	c.mu.Lock()
	delete(c.freeIPs, lo)
	c.mu.Unlock()
}

// PodAddr maps a pod IP (10.244.A.B) to the loopback address where the pod
// listens on this host; other addresses come back unchanged.
func (c *Cluster) PodAddr(podIP string) string {
	ip := net.ParseIP(podIP).To4()
	if ip == nil || ip[0] != 10 || ip[1] != 244 {
		return podIP
	}
	return fmt.Sprintf("127.%d.%d.%d", c.octet, ip[2], ip[3])
}

// replicaURL is the front-end's way to the pods.
func (c *Cluster) replicaURL(addr string, port int32) string {
	return "http://" + net.JoinHostPort(c.PodAddr(addr), strconv.Itoa(int(port)))
}

// Kubeconfig is the path of an admin kubeconfig (context "kubetest") for
// kubectl and client-go.
func (c *Cluster) Kubeconfig() string { return c.cp.Kubeconfig }

// ControlPlane is the cluster's control plane (admin client, kubectl).
func (c *Cluster) ControlPlane() *controlplane.ControlPlane { return c.cp }

// ScoringBaseURL is the front-end's plain-HTTP address on this host, for
// example http://127.0.0.1:41234.
func (c *Cluster) ScoringBaseURL() string { return c.lb.url() }

// ScoringTLSAddress is the host:port of the front end's HTTPS port on this
// host, for example 127.0.0.1:41235: once SetTLS gives a certificate, the
// scoring URIs are https://CNAME:PORT/... with this port, and clients dial
// this address for the CNAME (ClusterStatus.ScoringAddress).
func (c *Cluster) ScoringTLSAddress() string { return c.lb.tlsAddr() }

// Started is how long Start took, from nothing to a serving front-end.
func (c *Cluster) Started() time.Duration { return c.started }

// Status reports the kube driver's view: Succeeded, the nodes' shape and
// the front-end address.
func (c *Cluster) Status(ctx context.Context) (driver.ClusterStatus, error) {
	st, err := c.Cluster.Status(ctx)
	if err != nil {
		return st, err
	}
	st.Shape.GPUModel, st.Shape.FPGAs, st.Shape.Purpose = c.shape.GPUModel, c.shape.FPGAs, c.shape.Purpose
	return st, nil
}

// ApplyService gives every version's replica template an image the local
// cluster can run (the same one for an unchanged template, so re-applying
// changes nothing) and applies the service through the kube driver.
func (c *Cluster) ApplyService(ctx context.Context, spec *driver.ServiceSpec) error {
	cp, err := c.withImages(c.opts.Namespace, spec)
	if err != nil {
		return err
	}
	return c.Cluster.ApplyService(ctx, cp)
}

// InNamespace returns a driver.Cluster on this local cluster whose services
// go to namespace ns when their spec names none (one per test case, or per
// team), sharing the cluster's nodes, images and front-end. Detaching it
// leaves the cluster running.
func (c *Cluster) InNamespace(ctx context.Context, ns string) (driver.Cluster, error) {
	kc, err := kube.New(&kube.Options{Clock: c.opts.Clock, Logger: c.opts.Logger, Namespace: ns, ScoringBaseURL: c.lb.url(), ScoringTLSAddress: c.lb.tlsAddr()}).
		Attach(ctx, c.name+"/"+ns, driver.ClusterRef{Kubeconfig: c.cp.Kubeconfig, Context: "kubetest"})
	if err != nil {
		return nil, err
	}
	return &view{Cluster: kc, local: c, ns: ns}, nil
}

// view is a namespace of a local cluster.
type view struct {
	driver.Cluster
	local *Cluster
	ns    string
}

func (v *view) ApplyService(ctx context.Context, spec *driver.ServiceSpec) error {
	cp, err := v.local.withImages(v.ns, spec)
	if err != nil {
		return err
	}
	return v.Cluster.ApplyService(ctx, cp)
}

// withImages registers spec's replica templates and returns a copy of spec
// whose versions name their images.
func (c *Cluster) withImages(ns string, spec *driver.ServiceSpec) (*driver.ServiceSpec, error) {
	if spec == nil {
		return nil, errcode.New(errcode.InvalidArgument, "local cluster: service spec is nil")
	}
	cp := *spec
	cp.Versions = slices.Clone(spec.Versions)
	for i := range cp.Versions {
		r := &cp.Versions[i].Replica
		if r.Handler == nil && r.EntryScript == "" {
			continue // an image built elsewhere: it runs only if registered
		}
		img := &image{tmpl: *r}
		if r.Handler != nil {
			img.sample = r.Handler()
		}
		if spec.Namespace != "" {
			ns = spec.Namespace
		}
		key := ns + "/" + spec.Name + "/" + cp.Versions[i].Name
		if r.Handler == nil && r.Image == "" && c.opts.Dir != "" {
			// An entry script's replica is described by data: on a
			// cluster kept in a Dir, store it in the cluster under a
			// content-addressed name, so that this cluster restarted on
			// its Dir runs it too.
			name, err := storeTemplate(context.Background(), c.cp.Client, spec.Name, cp.Versions[i].Name, *r)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			c.images[name] = img
			c.last[key] = name
			c.mu.Unlock()
			r.Image = name
			continue
		}
		c.mu.Lock()
		name := r.Image
		if prev, ok := c.images[c.last[key]]; ok && name == "" && prev.equal(img) {
			name = c.last[key]
		}
		if name == "" {
			c.seq++
			name = fmt.Sprintf("aksml.local/%s:%s-%d", spec.Name, strings.ToLower(cp.Versions[i].Name), c.seq)
		}
		c.images[name] = img
		c.last[key] = name
		c.mu.Unlock()
		r.Image = name
	}
	return &cp, nil
}

// equal reports whether two templates run the same thing.
func (a *image) equal(b *image) bool {
	x, y := a.tmpl, b.tmpl
	x.Handler, y.Handler = nil, nil
	return reflect.DeepEqual(x, y) && reflect.DeepEqual(a.sample, b.sample)
}

// resolve returns what runs a container of pod, or the error an image
// pull would give.
func (c *Cluster) resolve(pod *corev1.Pod, ctr *corev1.Container) (runner, error) {
	if ctr.Image == kube.DefaultFrontEndImage {
		if c.clockInjected {
			return frontEndRunner{c}, nil
		}
		return c.frontEndProcess(), nil
	}
	c.mu.Lock()
	img := c.images[ctr.Image]
	c.mu.Unlock()
	if img == nil {
		if t, ok := loadTemplate(context.Background(), c.cp.Client, ctr.Image); ok {
			img = &image{tmpl: t}
			c.mu.Lock()
			c.images[ctr.Image] = img
			c.mu.Unlock()
		}
	}
	switch {
	case img == nil:
		return nil, fmt.Errorf("image %q is not in the local cluster: it runs the front-end (%s) and the replicas of services applied through it (Go models in this process, entry scripts from their source directories)", ctr.Image, kube.DefaultFrontEndImage)
	case img.tmpl.Handler != nil:
		return goRunner{tmpl: img.tmpl}, nil
	default:
		return scoreProcess(img.tmpl), nil
	}
}

// Detach and Delete stop the local cluster: nothing outside this process
// can reach it.
func (c *Cluster) Detach(ctx context.Context) error { return c.Close() }

// Delete stops the cluster and removes its files.
func (c *Cluster) Delete(ctx context.Context) error { return c.Close() }

// Close stops the load balancer, every pod and the control plane, and
// removes the cluster's files. Closing twice is harmless.
func (c *Cluster) Close() error {
	c.mu.Lock()
	closed := c.closed
	c.closed = true
	c.mu.Unlock()
	if closed {
		return nil
	}
	if c.lb != nil {
		c.lb.close()
	}
	err := c.cp.Close()
	c.probeClient.CloseIdleConnections()
	return err
}
