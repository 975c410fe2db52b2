// Package aks creates and attaches Azure Kubernetes Service clusters with
// the Azure SDK for Go (armcontainerservice) and runs aksml services on
// them with the kube driver. Provision returns at once a cluster in state
// Creating and, in the background, sends the AKS create (agent pool size
// and count, the AKS GPU label and taint for GPU sizes, the subnet and
// service address range of the shape's network), polls it until ARM is
// done, reads the admin kubeconfig and attaches the cluster: then it is
// Succeeded, or Failed with ARM's message. Attach takes an AKS resource id,
// reads the cluster's admin kubeconfig and attaches it. Tests drive it
// through the SDK's own fake server (armcontainerservice/fake), never live
// Azure.
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
	"github.com/aksml/aksml/compute/driver/pending"
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
	// PollFrequency is how often a create or delete is polled; default 5 s.
	PollFrequency time.Duration
	// KubeconfigDir receives the admin kubeconfig of each cluster; default
	// $TMPDIR/aksml-aks.
	KubeconfigDir string
	// Kube configures the kube driver of the clusters. With
	// InstallFrontEnd, a provisioned cluster's front-end is exposed as its
	// shape's network says (an internal load balancer on its subnet, or a
	// public IP); an attached cluster's as Kube's
	// FrontEndInternalLoadBalancer says.
	Kube *kube.Options
	// Logger receives progress; default discard.
	Logger *slog.Logger
}

// Provider creates and attaches AKS clusters.
type Provider struct {
	opts Options
	mc   *armcontainerservice.ManagedClustersClient
	// kube attaches the clusters. It never installs the front-end itself
	// (its InstallFrontEnd is false): the Provider does, per cluster, when
	// fe (the caller's kube options) asks for it.
	kube *kube.Provider
	fe   *kube.Options

	mu          sync.Mutex
	provisioned map[string]*pending.Cluster // by name, from Provision until Delete or Detach
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
	p := &Provider{opts: o, mc: mc, provisioned: map[string]*pending.Cluster{}}
	var ko kube.Options
	if o.Kube != nil {
		ko = *o.Kube
	}
	if ko.InstallFrontEnd {
		fe := ko
		p.fe = &fe
		ko.InstallFrontEnd = false
	}
	p.kube = kube.New(&ko)
	return p, nil
}

// ClusterOptions tune ManagedCluster; nil means defaults.
type ClusterOptions struct {
	// SubscriptionID is the subscription of the virtual network the
	// shape's network names (the provider's own). Required when the shape
	// names a subnet.
	SubscriptionID string
	// KubernetesVersion of the cluster; empty means the AKS default.
	KubernetesVersion string
}

// SubnetID is the ARM id of the subnet n names, in subscriptionID, as the
// agent pool's vnetSubnetID carries it.
func SubnetID(subscriptionID string, n driver.ClusterNetwork) string {
	return "/subscriptions/" + subscriptionID + "/resourceGroups/" + n.VNetResourceGroup +
		"/providers/Microsoft.Network/virtualNetworks/" + n.VNetName + "/subnets/" + n.SubnetName
}

// ManagedCluster is the AKS create body for a cluster of the given shape:
// one system agent pool "nodepool1" of shape.AgentCount × shape.VMSize;
// for GPU sizes the node label kubernetes.azure.com/accelerator=nvidia and
// the taint nvidia.com/gpu=present:NoSchedule (so only GPU services land
// there; the kube driver tolerates it).
//
// The shape's network: a subnet puts the nodes in it (the pool's
// vnetSubnetID) with the Azure CNI network plugin, whose pods take their
// addresses from that subnet, as the SDK's custom-vnet clusters do; the
// service range and DNS address go in the network profile (with kubenet
// when no subnet is named). DockerBridgeCIDR is not sent: AKS nodes run
// containerd and armcontainerservice v6 has no field for it, so it is only
// validated (compute.ProvisioningConfig). The load-balancer type is not
// part of the create either: the front-end's Service carries it (see
// kube.InstallOptions).
func ManagedCluster(name string, shape driver.ClusterShape, opts *ClusterOptions) armcontainerservice.ManagedCluster {
	var o ClusterOptions
	if opts != nil {
		o = *opts
	}
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
	if o.KubernetesVersion != "" {
		mc.Properties.KubernetesVersion = to.Ptr(o.KubernetesVersion)
	}
	n := shape.Network
	if n.HasSubnet() || n.ServiceCIDR != "" || n.DNSServiceIP != "" {
		np := &armcontainerservice.NetworkProfile{NetworkPlugin: to.Ptr(armcontainerservice.NetworkPluginKubenet)}
		if n.HasSubnet() {
			pool.VnetSubnetID = to.Ptr(SubnetID(o.SubscriptionID, n))
			np.NetworkPlugin = to.Ptr(armcontainerservice.NetworkPluginAzure)
		}
		if n.ServiceCIDR != "" {
			np.ServiceCidr = to.Ptr(n.ServiceCIDR)
		}
		if n.DNSServiceIP != "" {
			np.DNSServiceIP = to.Ptr(n.DNSServiceIP)
		}
		mc.Properties.NetworkProfile = np
	}
	return mc
}

// Provision starts creating the AKS cluster name in Options.ResourceGroup
// and returns it at once, in state Creating with shape. In the background
// it sends the create, polls it every Options.PollFrequency until ARM is
// done (minutes on Azure), reads the admin kubeconfig and attaches the
// cluster — installing the front-end, internal or public as shape.Network
// says, with Options.Kube.InstallFrontEnd. Then the cluster is Succeeded,
// or Failed with ARM's error code and message (a 4xx is InvalidArgument,
// 409 AlreadyExists, a 5xx Unavailable). Until then its service calls fail
// with FailedPrecondition. Delete stops the polling and deletes the ARM
// cluster; Detach stops the polling and leaves the cluster to ARM. A name
// already provisioned or attached here is AlreadyExists.
func (p *Provider) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	if p.opts.ResourceGroup == "" {
		return nil, errcode.New(errcode.InvalidArgument, "aks: Options.ResourceGroup is required to create a cluster")
	}
	body := ManagedCluster(name, shape, &ClusterOptions{SubscriptionID: p.opts.SubscriptionID, KubernetesVersion: p.opts.KubernetesVersion})
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.provisioned[name]; ok {
		return nil, errcode.Errorf(errcode.AlreadyExists, "compute target %q already exists", name)
	}
	if _, err := p.kube.Cluster(ctx, name); err == nil {
		return nil, errcode.Errorf(errcode.AlreadyExists, "compute target %q is already attached", name)
	}
	var c *pending.Cluster
	c = pending.Start(ctx, name, shape, func(ctx context.Context) (driver.Cluster, error) {
		return p.create(ctx, name, shape, body)
	}, &pending.Options{
		Delete: func(ctx context.Context, ready driver.Cluster) error { return p.deleteCluster(ctx, name, ready) },
		Forget: func() {
			p.mu.Lock()
			if p.provisioned[name] == c {
				delete(p.provisioned, name)
			}
			p.mu.Unlock()
		},
	})
	p.provisioned[name] = c
	p.opts.Logger.Info("aks: creating cluster", "name", name, "group", p.opts.ResourceGroup, "size", shape.VMSize, "count", shape.AgentCount)
	return c, nil
}

// create is the background part of Provision.
func (p *Provider) create(ctx context.Context, name string, shape driver.ClusterShape, body armcontainerservice.ManagedCluster) (driver.Cluster, error) {
	start := time.Now()
	poller, err := p.mc.BeginCreateOrUpdate(ctx, p.opts.ResourceGroup, name, body, nil)
	if err != nil {
		return nil, armError(err, "aks: create cluster %q", name)
	}
	res, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: p.opts.PollFrequency})
	if err != nil {
		return nil, armError(err, "aks: create cluster %q", name)
	}
	if st := res.Properties; st != nil && st.ProvisioningState != nil && *st.ProvisioningState != string(driver.StateSucceeded) {
		return nil, errcode.Errorf(errcode.Unavailable, "aks: create cluster %q: ARM finished in provisioning state %s", name, *st.ProvisioningState)
	}
	id := "/subscriptions/" + p.opts.SubscriptionID + "/resourceGroups/" + p.opts.ResourceGroup + "/providers/Microsoft.ContainerService/managedClusters/" + name
	if res.ID != nil {
		id = *res.ID
	}
	p.opts.Logger.Info("aks: cluster created", "name", name, "took", time.Since(start))
	return p.attach(ctx, name, driver.ClusterRef{ResourceID: id}, kube.InstallOptions{
		InternalLoadBalancer: shape.Network.InternalLoadBalancer,
		LoadBalancerSubnet:   shape.Network.LoadBalancerSubnet,
	})
}

// deleteCluster deletes the ARM cluster name (already gone is fine) and
// forgets its attachment.
func (p *Provider) deleteCluster(ctx context.Context, name string, ready driver.Cluster) error {
	poller, err := p.mc.BeginDelete(ctx, p.opts.ResourceGroup, name, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: p.opts.PollFrequency})
	}
	if err := armError(err, "aks: delete cluster %q", name); err != nil && !errors.Is(err, errcode.NotFound) {
		return err
	}
	switch c := ready.(type) {
	case *frontEndCluster:
		// The cluster is gone: forget it without uninstalling anything.
		return c.Cluster.Detach(ctx)
	case nil:
		return nil
	default:
		return c.Detach(ctx)
	}
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
// kubeconfig as kube.Provider does. With Options.Kube.InstallFrontEnd the
// front-end is installed as Options.Kube says and removed on Detach. A
// name already provisioned or attached here is AlreadyExists.
func (p *Provider) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	p.mu.Lock()
	_, provisioned := p.provisioned[name]
	p.mu.Unlock()
	if provisioned {
		return nil, errcode.Errorf(errcode.AlreadyExists, "compute target %q already exists", name)
	}
	var fe kube.InstallOptions
	if p.fe != nil {
		fe = kube.InstallOptions{InternalLoadBalancer: p.fe.FrontEndInternalLoadBalancer, LoadBalancerSubnet: p.fe.FrontEndLoadBalancerSubnet}
	}
	return p.attach(ctx, name, ref, fe)
}

// attach attaches ref (reading an AKS cluster's kubeconfig through ARM)
// and installs the front-end as fe says when the caller's kube options
// ask for it.
func (p *Provider) attach(ctx context.Context, name string, ref driver.ClusterRef, fe kube.InstallOptions) (driver.Cluster, error) {
	if ref.ResourceID != "" {
		path, err := p.kubeconfig(ctx, name, ref.ResourceID)
		if err != nil {
			return nil, err
		}
		ref = driver.ClusterRef{Kubeconfig: path}
	}
	dc, err := p.kube.Attach(ctx, name, ref)
	if err != nil || p.fe == nil {
		return dc, err
	}
	kc := dc.(*kube.Cluster)
	fe.Image = p.fe.FrontEndImage
	if err := kc.InstallFrontEndWith(ctx, fe); err != nil {
		_ = kc.Detach(context.WithoutCancel(ctx))
		return nil, err
	}
	return &frontEndCluster{kc}, nil
}

// kubeconfig reads the admin kubeconfig of the AKS cluster id through ARM
// and writes it under Options.KubeconfigDir, returning its path.
func (p *Provider) kubeconfig(ctx context.Context, name, id string) (string, error) {
	sub, rg, cluster, err := ParseResourceID(id)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(sub, p.opts.SubscriptionID) {
		return "", errcode.Errorf(errcode.InvalidArgument, "resource_id %q is in subscription %s; this provider's client is for %s", id, sub, p.opts.SubscriptionID)
	}
	got, err := p.mc.Get(ctx, rg, cluster, nil)
	if err != nil {
		return "", armError(err, "aks: read cluster %s", id)
	}
	if got.Properties != nil && got.Properties.ProvisioningState != nil && *got.Properties.ProvisioningState != string(driver.StateSucceeded) {
		return "", errcode.Errorf(errcode.FailedPrecondition, "aks: cluster %s is %s, not Succeeded", id, *got.Properties.ProvisioningState)
	}
	creds, err := p.mc.ListClusterAdminCredentials(ctx, rg, cluster, nil)
	if err != nil {
		return "", armError(err, "aks: read the admin credentials of %s", id)
	}
	if len(creds.Kubeconfigs) == 0 || creds.Kubeconfigs[0] == nil || len(creds.Kubeconfigs[0].Value) == 0 {
		return "", errcode.Errorf(errcode.FailedPrecondition, "aks: cluster %s returned no kubeconfig", id)
	}
	kc := creds.Kubeconfigs[0].Value
	// The REST API sends base64; the SDK decodes it. Accept both.
	if dec, err := base64.StdEncoding.DecodeString(string(kc)); err == nil && strings.Contains(string(dec), "apiVersion") {
		kc = dec
	}
	if err := os.MkdirAll(p.opts.KubeconfigDir, 0o700); err != nil {
		return "", errcode.Wrap(errcode.Internal, err)
	}
	path := filepath.Join(p.opts.KubeconfigDir, name+".kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return "", errcode.Wrap(errcode.Internal, err)
	}
	return path, nil
}

// frontEndCluster is an attached cluster whose front-end this provider
// installed: Detach removes it first.
type frontEndCluster struct{ *kube.Cluster }

// Detach removes the front-end, then forgets the cluster.
func (c *frontEndCluster) Detach(ctx context.Context) error {
	if err := c.UninstallFrontEnd(ctx); err != nil {
		return err
	}
	return c.Cluster.Detach(ctx)
}

// Cluster returns a provisioned (possibly still Creating) or attached
// cluster by name; NotFound otherwise.
func (p *Provider) Cluster(ctx context.Context, name string) (driver.Cluster, error) {
	p.mu.Lock()
	c, ok := p.provisioned[name]
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	return p.kube.Cluster(ctx, name)
}

// armError maps an ARM error to an errcode, keeping ARM's code and message;
// nil stays nil.
func armError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
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
	if errors.Is(err, context.Canceled) {
		return errcode.Errorf(errcode.Unavailable, "%s: stopped: %w", what, err)
	}
	return errcode.Errorf(errcode.Unavailable, "%s: %w", what, err)
}
