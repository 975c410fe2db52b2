package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
)

// Provider attaches Kubernetes clusters by kubeconfig and runs services on
// them with client-go. It is safe for concurrent use.
type Provider struct {
	opts Options

	mu       sync.Mutex
	clusters map[string]*Cluster
	byUID    map[string]string // kube-system namespace UID → cluster name
}

var _ driver.Provider = (*Provider)(nil)

// New returns a Provider with no clusters.
func New(opts *Options) *Provider {
	return &Provider{opts: opts.withDefaults(), clusters: map[string]*Cluster{}, byUID: map[string]string{}}
}

// Provision is Unimplemented: this provider attaches existing clusters.
// Creating AKS clusters (ARM) or local kind clusters is the job of the
// providers that build on this one.
func (p *Provider) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	return nil, errcode.Errorf(errcode.Unimplemented, "compute target %q: the kube provider attaches existing clusters (kubeconfig and context); it does not create them", name)
}

// Attach connects to the cluster of ref.Kubeconfig (a path; empty means the
// default loading rules: $KUBECONFIG, then ~/.kube/config) and ref.Context
// (empty means the current context). A ref with only a ResourceID is
// Unimplemented here (attaching AKS by resource id goes through ARM). The
// cluster's identity is the UID of its kube-system namespace: the same
// cluster attached twice, under any names, is AlreadyExists. An
// unreachable cluster is Unavailable. With Options.InstallFrontEnd the
// Backend names the Kubernetes backend in compute target records
// ("kubernetes").
func (p *Provider) Backend() string { return "kubernetes" }

// in-cluster front-end is installed too.
func (p *Provider) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	if ref.Kubeconfig == "" && ref.Context == "" && ref.ResourceID != "" {
		return nil, errcode.Errorf(errcode.Unimplemented, "compute target %q: attaching AKS cluster %s by resource id needs the Azure provider; give a kubeconfig and context instead", name, ref.ResourceID)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = ref.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: ref.Context}).ClientConfig()
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "compute target %q: kubeconfig %q context %q: %v", name, ref.Kubeconfig, ref.Context, err)
	}
	return p.AttachConfig(ctx, name, cfg)
}

// AttachConfig attaches the cluster a client-go config points at (for
// example rest.InClusterConfig()). See Attach for the errors.
func (p *Provider) AttachConfig(ctx context.Context, name string, cfg *rest.Config) (*Cluster, error) {
	if name == "" {
		return nil, errcode.New(errcode.InvalidArgument, "compute target name is empty")
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "compute target %q: %v", name, err)
	}
	ks, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(err, "compute target %q: reach the cluster at %s", name, cfg.Host)
	}
	uid := string(ks.UID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.clusters[name]; ok {
		return nil, errcode.Errorf(errcode.AlreadyExists, "compute target %q is already attached", name)
	}
	if other, ok := p.byUID[uid]; ok {
		return nil, errcode.Errorf(errcode.AlreadyExists, "the cluster at %s is already attached as compute target %q; attach it once (a second attachment breaks the first on Azure)", cfg.Host, other)
	}
	c := &Cluster{name: name, p: p, opts: p.opts, client: client, config: cfg, uid: uid, namespaces: map[string]string{}}
	p.clusters[name] = c
	p.byUID[uid] = name
	if p.opts.InstallFrontEnd {
		p.mu.Unlock()
		err := c.InstallFrontEnd(ctx, p.opts.FrontEndImage)
		p.mu.Lock()
		if err != nil {
			delete(p.clusters, name)
			delete(p.byUID, uid)
			return nil, err
		}
	}
	return c, nil
}

// Cluster returns an attached cluster by name; NotFound otherwise.
func (p *Provider) Cluster(ctx context.Context, name string) (driver.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clusters[name]
	if !ok {
		return nil, errcode.Errorf(errcode.NotFound, "compute target %q is not attached", name)
	}
	return c, nil
}

func (p *Provider) forget(c *Cluster) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.clusters[c.name] == c {
		delete(p.clusters, c.name)
		delete(p.byUID, c.uid)
	}
}

// apiError maps a Kubernetes API error to an errcode, keeping the API
// server's message.
func apiError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	code := errcode.Internal
	var netErr net.Error
	switch {
	case apierrors.IsNotFound(err):
		code = errcode.NotFound
	case apierrors.IsAlreadyExists(err):
		code = errcode.AlreadyExists
	case apierrors.IsConflict(err):
		code = errcode.Conflict
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		code = errcode.InvalidArgument
	case apierrors.IsUnauthorized(err):
		code = errcode.Unauthenticated
	case apierrors.IsForbidden(err):
		code = errcode.FailedPrecondition
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), errors.Is(err, context.DeadlineExceeded),
		// client-go's rate limiter refuses a wait that would pass the
		// context's deadline before the deadline itself, with an error
		// of golang.org/x/time/rate that wraps nothing: only its text
		// says so.
		strings.Contains(err.Error(), "would exceed context deadline"):
		code = errcode.DeadlineExceeded
	case apierrors.IsTooManyRequests(err), apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), errors.As(err, &netErr):
		code = errcode.Unavailable
	case errors.Is(err, context.Canceled):
		code = errcode.Unavailable
	}
	return errcode.Errorf(code, "%s: %w", what, err)
}
