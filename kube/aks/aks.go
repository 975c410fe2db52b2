// Package aks creates and attaches Azure Kubernetes Service clusters with
// the Azure SDK for Go (armcontainerservice) and runs aksml services on
// them with the kube driver. Provision sends the AKS create (agent pool
// size and count, the AKS GPU label and taint for GPU sizes) and waits for
// it; Attach takes an AKS resource id, reads the cluster's admin
// kubeconfig and attaches it. Tests drive it through the SDK's own fake
// server (armcontainerservice/fake), never live Azure.
package aks

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
)

// Options configure a Provider.
type Options struct {
	// SubscriptionID and ResourceGroup are where Provision creates
	// clusters. Attach reads them from the resource id.
	SubscriptionID, ResourceGroup string
	// Credential authenticates to ARM (azidentity, or the fake's).
	Credential azcore.TokenCredential
	// ClientOptions are passed to the SDK client (tests set Transport to
	// the fake server).
	ClientOptions *arm.ClientOptions
	// KubernetesVersion of new clusters; empty means the AKS default.
	KubernetesVersion string
	// PollFrequency is how often a create is polled; default 5 s.
	PollFrequency time.Duration
	// KubeconfigDir receives the admin kubeconfig of each cluster; default
	// $TMPDIR/aksml-aks.
	KubeconfigDir string
	// Kube configures the kube driver of the clusters.
	Kube *kube.Options
	// Logger receives progress; default discard.
	Logger *slog.Logger
}

// Provider creates and attaches AKS clusters.
type Provider struct {
	opts Options
	mc   *armcontainerservice.ManagedClustersClient
	kube *kube.Provider

	mu    sync.Mutex
	state map[string]driver.ClusterStatus // provisioning state by name
}

var _ driver.Provider = (*Provider)(nil)

// New returns a Provider; InvalidArgument without a subscription or
// credential.
func New(opts *Options) (*Provider, error) {
	if opts == nil || opts.SubscriptionID == "" || opts.Credential == nil {
		return nil, errcode.New(errcode.InvalidArgument, "aks: a subscription id and a credential are required")
	}
	o := *opts
	if o.PollFrequency <= 0 {
		o.PollFrequency = 5 * time.Second
	}
	if o.KubeconfigDir == "" {
		o.KubeconfigDir = filepath.Join(os.TempDir(), "aksml-aks")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	mc, err := armcontainerservice.NewManagedClustersClient(o.SubscriptionID, o.Credential, o.ClientOptions)
	if err != nil {
		return nil, errcode.Wrap(errcode.InvalidArgument, err)
	}
	return &Provider{opts: o, mc: mc, kube: kube.New(o.Kube), state: map[string]driver.ClusterStatus{}}, nil
}

// ManagedCluster is the AKS create body for a cluster of the given shape:
// one system agent pool "nodepool1" of shape.AgentCount × shape.VMSize;
// for GPU sizes the node label kubernetes.azure.com/accelerator=nvidia and
// the taint nvidia.com/gpu=present:NoSchedule (so only GPU services land
// there; the kube driver tolerates it).
func ManagedCluster(name string, shape driver.ClusterShape, kubernetesVersion string) armcontainerservice.ManagedCluster {
	pool := &armcontainerservice.ManagedClusterAgentPoolProfile{
		Name:   to.Ptr("nodepool1"),
		Count:  to.Ptr(int32(max(shape.AgentCount, 1))),
		VMSize: to.Ptr(shape.VMSize),
		Mode:   to.Ptr(armcontainerservice.AgentPoolModeSystem),
		OSType: to.Ptr(armcontainerservice.OSTypeLinux),
	}
	if shape.GPUs > 0 {
		pool.NodeLabels = map[string]*string{kube.LabelAccelerator: to.Ptr("nvidia")}
		pool.NodeTaints = []*string{to.Ptr(kube.ResourceGPU + "=present:NoSchedule")}
	}
	mc := armcontainerservice.ManagedCluster{
		Location: to.Ptr(shape.Location),
		Tags:     map[string]*string{"aksml-cluster-purpose": to.Ptr(shape.Purpose)},
		Identity: &armcontainerservice.ManagedClusterIdentity{Type: to.Ptr(armcontainerservice.ResourceIdentityTypeSystemAssigned)},
		Properties: &armcontainerservice.ManagedClusterProperties{
			DNSPrefix:         to.Ptr(name),
			AgentPoolProfiles: []*armcontainerservice.ManagedClusterAgentPoolProfile{pool},
		},
	}
	if kubernetesVersion != "" {
		mc.Properties.KubernetesVersion = to.Ptr(kubernetesVersion)
	}
	return mc
}

// Provision creates the AKS cluster name in Options.ResourceGroup and
// waits for ARM to finish (minutes on Azure), then attaches it. ARM's
// errors keep their message; a 4xx is InvalidArgument (409
// AlreadyExists), a 5xx Unavailable.
func (p *Provider) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	if p.opts.ResourceGroup == "" {
		return nil, errcode.New(errcode.InvalidArgument, "aks: Options.ResourceGroup is required to create a cluster")
	}
	p.setState(name, driver.StateCreating, shape, nil)
	poller, err := p.mc.BeginCreateOrUpdate(ctx, p.opts.ResourceGroup, name, ManagedCluster(name, shape, p.opts.KubernetesVersion), nil)
	if err != nil {
		p.setState(name, driver.StateFailed, shape, err)
		return nil, armError(err, "aks: create cluster %q", name)
	}
	res, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: p.opts.PollFrequency})
	if err != nil {
		p.setState(name, driver.StateFailed, shape, err)
		return nil, armError(err, "aks: create cluster %q", name)
	}
	if st := res.Properties; st != nil && st.ProvisioningState != nil && *st.ProvisioningState != string(driver.StateSucceeded) {
		err := fmt.Errorf("provisioning state %s", *st.ProvisioningState)
		p.setState(name, driver.StateFailed, shape, err)
		return nil, errcode.Errorf(errcode.Unavailable, "aks: create cluster %q: %v", name, err)
	}
	p.setState(name, driver.StateSucceeded, shape, nil)
	id := "/subscriptions/" + p.opts.SubscriptionID + "/resourceGroups/" + p.opts.ResourceGroup + "/providers/Microsoft.ContainerService/managedClusters/" + name
	if res.ID != nil {
		id = *res.ID
	}
	return p.Attach(ctx, name, driver.ClusterRef{ResourceID: id})
}

func (p *Provider) setState(name string, s driver.ProvisioningState, shape driver.ClusterShape, err error) {
	st := driver.ClusterStatus{State: s, Shape: shape}
	if err != nil {
		st.Errors = []string{err.Error()}
	}
	p.mu.Lock()
	p.state[name] = st
	p.mu.Unlock()
}

// ProvisioningStatus reports the state of a Provision by cluster name
// (Creating while ARM works); NotFound for a name never provisioned.
func (p *Provider) ProvisioningStatus(name string) (driver.ClusterStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.state[name]
	if !ok {
		return driver.ClusterStatus{}, errcode.Errorf(errcode.NotFound, "aks: no cluster %q was provisioned", name)
	}
	return st, nil
}

// ParseResourceID splits an AKS resource id
// (/subscriptions/S/resourceGroups/RG/providers/Microsoft.ContainerService/managedClusters/NAME)
// as the SDK v1 checks it: nine segments, the seventh
// Microsoft.ContainerService.
func ParseResourceID(id string) (subscription, group, name string, err error) {
	seg := strings.Split(id, "/")
	if len(seg) != 9 || seg[0] != "" || !strings.EqualFold(seg[1], "subscriptions") || !strings.EqualFold(seg[3], "resourceGroups") ||
		!strings.EqualFold(seg[5], "providers") || !strings.EqualFold(seg[6], "Microsoft.ContainerService") || !strings.EqualFold(seg[7], "managedClusters") ||
		seg[2] == "" || seg[4] == "" || seg[8] == "" {
		return "", "", "", errcode.Errorf(errcode.InvalidArgument, "resource_id %q is not an AKS cluster id (/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.ContainerService/managedClusters/NAME)", id)
	}
	return seg[2], seg[4], seg[8], nil
}

// Attach attaches an AKS cluster by ref.ResourceID: it reads the cluster
// (NotFound when ARM has none), fetches its admin kubeconfig and attaches
// that with the kube driver. A ref without a resource id is attached by
// kubeconfig as kube.Provider does.
func (p *Provider) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	if ref.ResourceID == "" {
		return p.kube.Attach(ctx, name, ref)
	}
	sub, rg, cluster, err := ParseResourceID(ref.ResourceID)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(sub, p.opts.SubscriptionID) {
		return nil, errcode.Errorf(errcode.InvalidArgument, "resource_id %q is in subscription %s; this provider's client is for %s", ref.ResourceID, sub, p.opts.SubscriptionID)
	}
	got, err := p.mc.Get(ctx, rg, cluster, nil)
	if err != nil {
		return nil, armError(err, "aks: read cluster %s", ref.ResourceID)
	}
	if got.Properties != nil && got.Properties.ProvisioningState != nil && *got.Properties.ProvisioningState != string(driver.StateSucceeded) {
		return nil, errcode.Errorf(errcode.FailedPrecondition, "aks: cluster %s is %s, not Succeeded", ref.ResourceID, *got.Properties.ProvisioningState)
	}
	creds, err := p.mc.ListClusterAdminCredentials(ctx, rg, cluster, nil)
	if err != nil {
		return nil, armError(err, "aks: read the admin credentials of %s", ref.ResourceID)
	}
	if len(creds.Kubeconfigs) == 0 || creds.Kubeconfigs[0] == nil || len(creds.Kubeconfigs[0].Value) == 0 {
		return nil, errcode.Errorf(errcode.FailedPrecondition, "aks: cluster %s returned no kubeconfig", ref.ResourceID)
	}
	kc := creds.Kubeconfigs[0].Value
	// The REST API sends base64; the SDK decodes it. Accept both.
	if dec, err := base64.StdEncoding.DecodeString(string(kc)); err == nil && strings.Contains(string(dec), "apiVersion") {
		kc = dec
	}
	if err := os.MkdirAll(p.opts.KubeconfigDir, 0o700); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err)
	}
	path := filepath.Join(p.opts.KubeconfigDir, name+".kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err)
	}
	return p.kube.Attach(ctx, name, driver.ClusterRef{Kubeconfig: path})
}

// Cluster returns an attached cluster by name.
func (p *Provider) Cluster(ctx context.Context, name string) (driver.Cluster, error) {
	return p.kube.Cluster(ctx, name)
}

// armError maps an ARM error to an errcode, keeping ARM's code and message.
func armError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code := errcode.Internal
		switch s := re.StatusCode; {
		case s == http.StatusNotFound:
			code = errcode.NotFound
		case s == http.StatusConflict:
			code = errcode.AlreadyExists
		case s == http.StatusUnauthorized:
			code = errcode.Unauthenticated
		case s == http.StatusForbidden:
			code = errcode.FailedPrecondition
		case s == http.StatusTooManyRequests || s >= 500:
			code = errcode.Unavailable
		case s >= 400:
			code = errcode.InvalidArgument
		}
		return errcode.Errorf(code, "%s: %s: %w", what, re.ErrorCode, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errcode.Errorf(errcode.DeadlineExceeded, "%s: %w", what, err)
	}
	return errcode.Errorf(errcode.Unavailable, "%s: %w", what, err)
}
