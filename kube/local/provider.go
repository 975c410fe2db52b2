package local

import (
	"context"
	"sync"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/driver/pending"
	"github.com/aksml/aksml/errcode"
)

// Provider makes local clusters compute targets: compute.Create with
// CreateOptions{Provider: local.NewProvider(nil)} starts one from the
// provisioning config's VM size and agent count, and aml.Deploy deploys to
// it through the kube driver. Provision returns at once in Creating; the
// cluster is Succeeded when its front-end serves (Target.Wait). Clusters
// live in this process.
type Provider struct {
	opts *Options

	mu       sync.Mutex
	clusters map[string]*pending.Cluster
}

var _ driver.Provider = (*Provider)(nil)

// NewProvider returns a Provider whose clusters use opts (nil: defaults).
func NewProvider(opts *Options) *Provider {
	return &Provider{opts: opts, clusters: map[string]*pending.Cluster{}}
}

// Provision starts a local cluster of shape in the background.
func (p *Provider) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.clusters[name]; ok {
		return nil, errcode.Errorf(errcode.AlreadyExists, "local cluster %q already exists", name)
	}
	c := pending.Start(ctx, name, shape, func(ctx context.Context) (driver.Cluster, error) {
		c, err := Start(ctx, name, shape, p.opts)
		if err != nil {
			return nil, err
		}
		return c, nil
	}, &pending.Options{Forget: func() {
		p.mu.Lock()
		delete(p.clusters, name)
		p.mu.Unlock()
	}})
	p.clusters[name] = c
	return c, nil
}

// Attach is not supported: a local cluster is created, not attached
// (attach a running cluster by kubeconfig with the kube driver).
func (p *Provider) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	return nil, errcode.Errorf(errcode.Unimplemented, "compute target %q: a local cluster is created with compute.Create, not attached; attach a running cluster by kubeconfig with the kube driver (kube.New)", name)
}

// Cluster returns a cluster this provider started, by name.
func (p *Provider) Cluster(ctx context.Context, name string) (driver.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clusters[name]; ok {
		return c, nil
	}
	return nil, errcode.Errorf(errcode.NotFound, "local cluster %q not found (local clusters live in the process that created them)", name)
}
