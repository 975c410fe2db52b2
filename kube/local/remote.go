package local

import (
	"context"
	"slices"
	"sync"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
)

// RemoteProvider reaches local clusters that run in another process —
// the one `aksml local start` leaves running — by their kubeconfig
// (Options.Dir/admin.kubeconfig): compute.Attach or compute.Get with it
// deploy there from any process. Entry-script replicas are described to
// the cluster as data; Go-handler replicas are code of the process that
// runs the cluster and are refused (FailedPrecondition).
type RemoteProvider struct {
	opts *kube.Options

	mu       sync.Mutex
	clusters map[string]driver.Cluster
}

var _ driver.Provider = (*RemoteProvider)(nil)

// NewRemoteProvider returns a provider of local clusters running
// elsewhere, whose kube driver uses opts (nil: defaults).
func NewRemoteProvider(opts *kube.Options) *RemoteProvider {
	return &RemoteProvider{opts: opts, clusters: map[string]driver.Cluster{}}
}

// Backend names the local cluster in compute target records ("local").
func (p *RemoteProvider) Backend() string { return "local" }

// Provision is Unimplemented: a local cluster is started (Start, or
// `aksml local start`), then attached.
func (p *RemoteProvider) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	return nil, errcode.Errorf(errcode.Unimplemented, "compute target %q: start the local cluster first (aksml local start), then attach it", name)
}

// Attach connects to the local cluster of ref.Kubeconfig.
func (p *RemoteProvider) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	if ref.Kubeconfig == "" {
		return nil, errcode.Errorf(errcode.InvalidArgument, "compute target %q: a local cluster is attached by its kubeconfig", name)
	}
	var o kube.Options
	if p.opts != nil {
		o = *p.opts
	}
	kc, err := kube.New(&o).Attach(ctx, name, ref)
	if err != nil {
		return nil, err
	}
	c := &remoteCluster{Cluster: kc, kc: kc.(*kube.Cluster)}
	p.mu.Lock()
	p.clusters[name] = c
	p.mu.Unlock()
	return c, nil
}

// Cluster returns a cluster attached through p, by name.
func (p *RemoteProvider) Cluster(ctx context.Context, name string) (driver.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clusters[name]; ok {
		return c, nil
	}
	return nil, errcode.Errorf(errcode.NotFound, "local cluster %q is not attached in this process", name)
}

// remoteCluster applies services to a local cluster of another process.
type remoteCluster struct {
	driver.Cluster
	kc *kube.Cluster
}

func (c *remoteCluster) ApplyService(ctx context.Context, spec *driver.ServiceSpec) error {
	if spec == nil {
		return errcode.New(errcode.InvalidArgument, "local cluster: service spec is nil")
	}
	cp := *spec
	cp.Versions = slices.Clone(spec.Versions)
	for i := range cp.Versions {
		r := &cp.Versions[i].Replica
		switch {
		case r.Handler != nil:
			return errcode.Errorf(errcode.FailedPrecondition,
				"service %q: a Go-handler model is code of this program and cannot run in the local cluster's process; deploy it with the Go API to a cluster this program runs (local.Start or local.NewProvider), or use an entry script", spec.Name)
		case r.EntryScript != "" && r.Image == "":
			name, err := storeTemplate(ctx, c.kc.Client(), spec.Name, cp.Versions[i].Name, *r)
			if err != nil {
				return err
			}
			r.Image = name
		}
	}
	return c.Cluster.ApplyService(ctx, &cp)
}
