// Package kind provisions local Kubernetes clusters with kind (Kubernetes in
// Docker, through its Go API, sigs.k8s.io/kind) and runs aksml services on
// them with the kube driver. Its nodes carry the AKS labels of the
// provisioning shape (agent pool, instance type and, for GPU sizes, the
// accelerator label and nvidia.com/gpu taint), so deploy configs behave as
// they would on AKS.
//
// kind needs a running container engine (Docker, Podman or nerdctl) and its
// node image in that engine. Without either, Provision fails at once with
// FailedPrecondition and a message that says which is missing and what to
// do, rather than with kind's own pull or daemon errors minutes later.
// Otherwise Provision returns at once a cluster in state Creating; kind
// creates it in the background (minutes), and it becomes Succeeded once
// attached, or Failed with kind's error.
package kind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/driver/pending"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	"github.com/aksml/aksml/kube"
)

// DefaultNodeImage is kind's node image for this kind release.
const DefaultNodeImage = defaults.Image

// Options configure a Provider; nil means defaults.
type Options struct {
	// NodeImage is the kind node image; default DefaultNodeImage. It must
	// already be in the container engine (this machine cannot pull).
	NodeImage string
	// KubeconfigDir receives one kubeconfig per provisioned cluster;
	// default $TMPDIR/aksml-kind.
	KubeconfigDir string
	// WaitForReady bounds the wait for the control plane; default 5 min.
	WaitForReady time.Duration
	// Kube configures the kube driver of the clusters.
	Kube *kube.Options
	// Logger receives progress; default discard.
	Logger *slog.Logger
}

// Provider is a driver.Provider whose Provision creates kind clusters and
// whose Attach attaches any cluster by kubeconfig (as kube.Provider).
type Provider struct {
	opts Options
	kube *kube.Provider

	mu       sync.Mutex
	clusters map[string]*Cluster
}

var _ driver.Provider = (*Provider)(nil)

// New returns a Provider.
func New(opts *Options) *Provider {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.NodeImage == "" {
		o.NodeImage = DefaultNodeImage
	}
	if o.KubeconfigDir == "" {
		o.KubeconfigDir = filepath.Join(os.TempDir(), "aksml-kind")
	}
	if o.WaitForReady <= 0 {
		o.WaitForReady = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provider{opts: o, kube: kube.New(o.Kube), clusters: map[string]*Cluster{}}
}

// ClusterConfig is the kind configuration of an AKS-like cluster of the
// given shape: one control-plane node and shape.AgentCount workers labelled
// kubernetes.azure.com/agentpool=nodepool1 and
// node.kubernetes.io/instance-type=VMSIZE, plus, for GPU shapes,
// kubernetes.azure.com/accelerator=nvidia (kind nodes cannot really offer
// nvidia.com/gpu; the label lets placement be checked). Of the shape's
// network only the service range applies (kind's serviceSubnet); the
// Azure subnet, DNS address and load balancer have no kind counterpart.
func ClusterConfig(shape driver.ClusterShape) *v1alpha4.Cluster {
	cfg := &v1alpha4.Cluster{TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"}}
	cfg.Networking.ServiceSubnet = shape.Network.ServiceCIDR
	cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.ControlPlaneRole})
	for range max(shape.AgentCount, 1) {
		labels := map[string]string{"kubernetes.azure.com/agentpool": "nodepool1"}
		if shape.VMSize != "" {
			labels["node.kubernetes.io/instance-type"] = shape.VMSize
		}
		if shape.GPUs > 0 {
			labels[kube.LabelAccelerator] = "nvidia"
		}
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole, Labels: labels})
	}
	return cfg
}

// engines are the container engines kind drives, in kind's order.
var engines = []struct {
	bin    string
	option func() cluster.ProviderOption
}{
	{"docker", cluster.ProviderWithDocker},
	{"nerdctl", func() cluster.ProviderOption { return cluster.ProviderWithNerdctl("") }},
	{"podman", cluster.ProviderWithPodman},
}

// engine returns the first container engine that is installed and
// running; FailedPrecondition naming what was tried otherwise.
func engine(ctx context.Context) (string, cluster.ProviderOption, error) {
	var tried []string
	for _, e := range engines {
		if _, err := exec.LookPath(e.bin); err != nil {
			tried = append(tried, e.bin+": not installed")
			continue
		}
		out, err := exec.CommandContext(ctx, e.bin, "info").CombinedOutput()
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: installed, but `%s info` fails: %s", e.bin, e.bin, lastLine(out, err)))
			continue
		}
		return e.bin, e.option(), nil
	}
	return "", nil, errcode.Errorf(errcode.FailedPrecondition, "kind needs a running container engine (Docker, Podman or nerdctl) and found none (%s); start one, or attach an existing cluster by kubeconfig instead", strings.Join(tried, "; "))
}

func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

// Provision checks at once that a container engine runs and has the node
// image (FailedPrecondition naming what is missing otherwise), then
// returns the cluster in state Creating while kind creates it in the
// background (minutes) with the nodes of ClusterConfig(shape) and attaches
// it; then it is Succeeded, or Failed with kind's error. kind's create
// cannot be interrupted: Delete or Detach during it wait for it to end,
// then delete the kind cluster (Detach too, as nothing could reach a
// cluster whose attach was stopped); Detach once Succeeded leaves the
// cluster running. A name already provisioned here is AlreadyExists.
func (p *Provider) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	p.mu.Lock()
	_, taken := p.clusters[name]
	p.mu.Unlock()
	if taken {
		return nil, errcode.Errorf(errcode.AlreadyExists, "compute target %q already exists", name)
	}
	bin, opt, err := engine(ctx)
	if err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "image", "inspect", p.opts.NodeImage).CombinedOutput(); err != nil {
		return nil, errcode.Errorf(errcode.FailedPrecondition, "kind node image %s is not in the %s engine (%s), and this machine cannot pull it: load it first (%s load -i kindest-node.tar) or set kind.Options.NodeImage to an image the engine has", p.opts.NodeImage, bin, lastLine(out, err), bin)
	}
	if err := os.MkdirAll(p.opts.KubeconfigDir, 0o700); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err)
	}
	c := &Cluster{kind: cluster.NewProvider(opt), engine: bin, kubeconfig: filepath.Join(p.opts.KubeconfigDir, name+".kubeconfig")}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.clusters[name]; ok {
		return nil, errcode.Errorf(errcode.AlreadyExists, "compute target %q already exists", name)
	}
	c.Cluster = pending.Start(ctx, name, shape, func(ctx context.Context) (driver.Cluster, error) {
		return p.create(ctx, name, c, shape)
	}, &pending.Options{
		Delete: func(ctx context.Context, ready driver.Cluster) error { return c.remove(ctx, ready) },
		Forget: func() {
			p.mu.Lock()
			if p.clusters[name] == c {
				delete(p.clusters, name)
			}
			p.mu.Unlock()
		},
	})
	p.clusters[name] = c
	return c, nil
}

// create is the background part of Provision: kind's create, then the
// attach. A cluster made after Delete or Detach asked to stop is deleted.
// It reads only c's fields set before the goroutine started.
func (p *Provider) create(ctx context.Context, name string, c *Cluster, shape driver.ClusterShape) (driver.Cluster, error) {
	p.opts.Logger.Info("kind: creating cluster", "name", name, "image", p.opts.NodeImage, "workers", max(shape.AgentCount, 1))
	start := time.Now()
	if err := c.kind.Create(name,
		cluster.CreateWithV1Alpha4Config(ClusterConfig(shape)),
		cluster.CreateWithNodeImage(p.opts.NodeImage),
		cluster.CreateWithWaitForReady(p.opts.WaitForReady),
		cluster.CreateWithKubeconfigPath(c.kubeconfig),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	); err != nil {
		// kind's message names the failing command; its output says why.
		if re := kindexec.RunErrorForError(err); re != nil && len(bytes.TrimSpace(re.Output)) > 0 {
			return nil, errcode.Errorf(errcode.Unavailable, "kind: create cluster %q: %w: %s", name, err, lastLine(re.Output, err))
		}
		return nil, errcode.Errorf(errcode.Unavailable, "kind: create cluster %q: %w", name, err)
	}
	p.opts.Logger.Info("kind: cluster created", "name", name, "took", time.Since(start))
	if err := ctx.Err(); err != nil {
		_ = c.kind.Delete(name, c.kubeconfig)
		return nil, err
	}
	kc, err := p.kube.Attach(ctx, name, driver.ClusterRef{Kubeconfig: c.kubeconfig, Context: "kind-" + name})
	if err != nil {
		_ = c.kind.Delete(name, c.kubeconfig)
		return nil, err
	}
	return kc, nil
}

// Attach attaches an existing cluster by kubeconfig (kube.Provider.Attach).
func (p *Provider) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	return p.kube.Attach(ctx, name, ref)
}

// Cluster returns a provisioned or attached cluster by name.
func (p *Provider) Cluster(ctx context.Context, name string) (driver.Cluster, error) {
	p.mu.Lock()
	c, ok := p.clusters[name]
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	return p.kube.Cluster(ctx, name)
}

// Cluster is a kind cluster this provider created: while Creating, a
// pending cluster whose service calls fail with FailedPrecondition; once
// Succeeded, the kube driver's cluster. It can load images into its nodes
// and be deleted.
type Cluster struct {
	*pending.Cluster
	kind       *cluster.Provider
	engine     string
	kubeconfig string
}

// remove deletes the kind cluster (none is fine) and forgets ready.
func (c *Cluster) remove(ctx context.Context, ready driver.Cluster) error {
	if err := c.kind.Delete(c.Name(), c.kubeconfig); err != nil {
		return errcode.Errorf(errcode.Unavailable, "kind: delete cluster %q: %w", c.Name(), err)
	}
	if ready != nil {
		return ready.Detach(ctx)
	}
	return nil
}

// LoadImage copies image ref from the container engine into every node of the
// cluster (as `kind load docker-image`), so pods can run it without a
// registry.
func (c *Cluster) LoadImage(ctx context.Context, ref string) error {
	if _, err := c.Ready(); err != nil {
		return err
	}
	nodes, err := c.kind.ListInternalNodes(c.Name())
	if err != nil {
		return errcode.Errorf(errcode.Unavailable, "kind: list nodes of %q: %w", c.Name(), err)
	}
	var archive bytes.Buffer
	cmd := exec.CommandContext(ctx, c.engine, "save", ref)
	cmd.Stdout = &archive
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return errcode.Errorf(errcode.NotFound, "kind: image %s is not in the %s engine: %s", ref, c.engine, lastLine(stderr.Bytes(), err))
	}
	var errs []error
	for _, n := range nodes {
		if err := nodeutils.LoadImageArchive(n, io.Reader(bytes.NewReader(archive.Bytes()))); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.String(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return errcode.Wrap(errcode.Unavailable, err)
	}
	return nil
}

// Distribute loads ref into the cluster's nodes (LoadImage) and returns it
// unchanged: the nodes run it by the same reference. It makes a Cluster an
// image.Distributor.
func (c *Cluster) Distribute(ctx context.Context, ref string) (string, error) {
	if err := c.LoadImage(ctx, ref); err != nil {
		return "", err
	}
	return ref, nil
}

var _ image.Distributor = (*Cluster)(nil)
