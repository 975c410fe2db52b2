package aks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/kube/aks"
	"github.com/aksml/aksml/kube/kubetest"
)

const sub = "00000000-0000-0000-0000-000000000001"

// fakeARM is an AKS control plane in the SDK's fake server: clusters it
// "creates" are the given kubeconfig's cluster.
type fakeARM struct {
	mu        sync.Mutex
	created   map[string]armcontainerservice.ManagedCluster
	deleted   []string
	kubecfg   []byte
	createErr string        // ARM error code refusing the create, if any
	pollErr   string        // ARM error code ending the create while it is polled, if any
	state     string        // terminal provisioning state; default Succeeded
	gate      chan struct{} // when set, the create is answered once it is closed
}

func (f *fakeARM) body(key string) (armcontainerservice.ManagedCluster, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mc, ok := f.created[key]
	return mc, ok
}

func (f *fakeARM) provider(t *testing.T, kopts *kube.Options) *aks.Provider {
	srv := &fake.ManagedClustersServer{
		BeginCreateOrUpdate: func(ctx context.Context, rg, name string, mc armcontainerservice.ManagedCluster, _ *armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.ManagedClustersClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			if f.createErr != "" {
				errResp.SetResponseError(http.StatusBadRequest, f.createErr)
				return
			}
			f.mu.Lock()
			f.created[rg+"/"+name] = mc
			f.mu.Unlock()
			state := f.state
			if state == "" {
				state = "Succeeded"
			}
			out := mc
			out.ID = to.Ptr(fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s", sub, rg, name))
			out.Properties.ProvisioningState = to.Ptr(state)
			resp.AddNonTerminalResponse(http.StatusCreated, nil)
			resp.AddNonTerminalResponse(http.StatusOK, nil)
			if f.pollErr != "" {
				resp.SetTerminalError(http.StatusOK, f.pollErr)
				return
			}
			resp.SetTerminalResponse(http.StatusOK, armcontainerservice.ManagedClustersClientCreateOrUpdateResponse{ManagedCluster: out}, nil)
			return
		},
		BeginDelete: func(ctx context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientBeginDeleteOptions) (resp azfake.PollerResponder[armcontainerservice.ManagedClustersClientDeleteResponse], errResp azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.deleted = append(f.deleted, rg+"/"+name)
			if _, ok := f.created[rg+"/"+name]; !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			delete(f.created, rg+"/"+name)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, armcontainerservice.ManagedClustersClientDeleteResponse{}, nil)
			return
		},
		Get: func(ctx context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientGetOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetResponse], errResp azfake.ErrorResponder) {
			mc, ok := f.body(rg + "/" + name)
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			mc.Properties.ProvisioningState = to.Ptr("Succeeded")
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientGetResponse{ManagedCluster: mc}, nil)
			return
		},
		ListClusterAdminCredentials: func(ctx context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientListClusterAdminCredentialsOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientListClusterAdminCredentialsResponse], errResp azfake.ErrorResponder) {
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientListClusterAdminCredentialsResponse{CredentialResults: armcontainerservice.CredentialResults{
				Kubeconfigs: []*armcontainerservice.CredentialResult{{Name: to.Ptr("clusterAdmin"), Value: f.kubecfg}},
			}}, nil)
			return
		},
	}
	p, err := aks.New(&aks.Options{
		SubscriptionID: sub, ResourceGroup: "ml-rg", Credential: &azfake.TokenCredential{},
		ClientOptions: &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &gatedTransport{f: f, next: fake.NewManagedClustersServerTransport(srv)}}},
		PollFrequency: 10 * time.Millisecond, KubeconfigDir: t.TempDir(), Kube: kopts,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gatedTransport holds each create (PUT) until fakeARM.gate is closed, or
// its context ends. It holds the request before the SDK's fake server
// sees it: that server may panic when a context ends while its handler
// runs (Azure/azure-sdk-for-go#25895, send on a closed channel).
type gatedTransport struct {
	f    *fakeARM
	next policy.Transporter
}

func (g *gatedTransport) Do(req *http.Request) (*http.Response, error) {
	g.f.mu.Lock()
	gate := g.f.gate
	g.f.mu.Unlock()
	if gate != nil && req.Method == http.MethodPut {
		select {
		case <-gate:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return g.next.Do(req)
}

func newFake() *fakeARM { return &fakeARM{created: map[string]armcontainerservice.ManagedCluster{}} }

// waiter is what Provision's clusters offer to wait for the background
// create (pending.Cluster).
type waiter interface {
	Wait(ctx context.Context) error
	Done() <-chan struct{}
}

// TestIntegrationCreateAndAttach creates a GPU cluster in a virtual network
// behind an internal load balancer through the SDK's fake ARM server (whose
// admin kubeconfig is a real control plane's): Provision returns at once
// with the cluster Creating, the create body carries the pool and the
// network, the cluster becomes Succeeded with its front-end Service
// internal, deploys work, the cluster attaches by resource id, and Delete
// deletes it through ARM.
func TestIntegrationCreateAndAttach(t *testing.T) {
	shape := drivertest.GPUShape
	shape.Location = "eastus"
	shape.Network = driver.ClusterNetwork{VNetResourceGroup: "net-rg", VNetName: "ml-vnet", SubnetName: "aks-nodes",
		ServiceCIDR: "10.1.0.0/16", DNSServiceIP: "10.1.0.10", DockerBridgeCIDR: "172.17.0.1/16",
		InternalLoadBalancer: true, LoadBalancerSubnet: "ilb-subnet"}
	cp := kubetest.Start(t, &kubetest.Options{Nodes: kubetest.NodesForShape(shape)})
	kc, err := os.ReadFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	f.kubecfg = kc
	f.gate = make(chan struct{})
	const feNS = "aks-fe"
	p := f.provider(t, &kube.Options{InstallFrontEnd: true, FrontEndNamespace: feNS,
		FrontEndImage: "example.com/aksml-fe@sha256:" + strings.Repeat("f", 64)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	c, err := p.Provision(ctx, "gpu-aks", shape)
	returned := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.State != driver.StateCreating || st.Shape != shape {
		t.Errorf("status right after Provision: %+v %v, want Creating with the shape", st, err)
	}
	s := drivertest.Spec("gpu-svc", nil, 1)
	s.Versions[0].Replica.Image = "example.com/score@sha256:" + strings.Repeat("a", 64)
	s.Versions[0].Replica.GPUs = 1
	if err := c.ApplyService(ctx, s); !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "cluster gpu-aks is still Creating") {
		t.Errorf("ApplyService while Creating: %v, want FailedPrecondition", err)
	}
	if _, err := p.Provision(ctx, "gpu-aks", shape); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("provisioning the name again: %v, want AlreadyExists", err)
	}
	if got, err := p.Cluster(ctx, "gpu-aks"); err != nil || got != c {
		t.Errorf("Cluster(gpu-aks) while Creating: %v %v", got, err)
	}

	released := time.Now()
	close(f.gate)
	if err := c.(waiter).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING provision_call=%v release_to_succeeded=%v (fake ARM: 2 polls at 10ms, then kubeconfig, attach and front-end install on the control plane)",
		returned.Round(time.Microsecond), time.Since(released).Round(time.Millisecond))
	if returned > time.Second {
		t.Errorf("Provision took %v; it must return at once", returned)
	}

	mc, _ := f.body("ml-rg/gpu-aks")
	pool := mc.Properties.AgentPoolProfiles[0]
	np := mc.Properties.NetworkProfile
	if np == nil {
		t.Fatal("create body has no network profile")
	}
	for _, tc := range []struct{ what, got, want string }{
		{"location", *mc.Location, "eastus"},
		{"count", fmt.Sprint(*pool.Count), "1"},
		{"vm size", *pool.VMSize, "Standard_NC6s_v3"},
		{"gpu label", *pool.NodeLabels[kube.LabelAccelerator], "nvidia"},
		{"gpu taint", *pool.NodeTaints[0], "nvidia.com/gpu=present:NoSchedule"},
		{"dns prefix", *mc.Properties.DNSPrefix, "gpu-aks"},
		{"subnet id", *pool.VnetSubnetID, "/subscriptions/" + sub + "/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/ml-vnet/subnets/aks-nodes"},
		{"network plugin", string(*np.NetworkPlugin), "azure"},
		{"service cidr", *np.ServiceCidr, "10.1.0.0/16"},
		{"dns service ip", *np.DNSServiceIP, "10.1.0.10"},
	} {
		if tc.got != tc.want {
			t.Errorf("create body %s = %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	st, err = c.Status(ctx)
	if err != nil || st.State != driver.StateSucceeded || st.Shape.GPUs != 1 || st.Shape.VMSize != "Standard_NC6s_v3" {
		t.Errorf("cluster status %+v %v", st, err)
	}
	svc, err := cp.Client.CoreV1().Services(feNS).Get(ctx, kube.FrontEndName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Annotations[kube.AnnotationInternalLoadBalancer] != "true" || svc.Annotations[kube.AnnotationInternalSubnet] != "ilb-subnet" {
		t.Errorf("front-end service annotations %v, want an internal load balancer on ilb-subnet", svc.Annotations)
	}

	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, c, "gpu-svc", driver.Healthy)
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/ml-rg/providers/Microsoft.ContainerService/managedClusters/gpu-aks", sub)
	if _, err := p.Attach(ctx, "again", driver.ClusterRef{ResourceID: id}); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("attaching the created cluster a second time: %v, want AlreadyExists", err)
	}
	if _, err := p.Attach(ctx, "gpu-aks", driver.ClusterRef{Kubeconfig: cp.Kubeconfig}); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("attaching under the provisioned name: %v, want AlreadyExists", err)
	}
	// A second provider attaches it by resource id.
	p2 := f.provider(t, nil)
	c2, err := p2.Attach(ctx, "attached", driver.ClusterRef{ResourceID: id})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c2.ServiceStatus(ctx, "gpu-svc"); err != nil || st.State != driver.Healthy {
		t.Errorf("the service seen through the attached cluster: %+v %v", st, err)
	}
	if err := c2.Detach(ctx); err != nil {
		t.Fatal(err)
	}

	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.body("ml-rg/gpu-aks"); ok {
		t.Error("Delete left the ARM cluster")
	}
	if _, err := p.Cluster(ctx, "gpu-aks"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Cluster after Delete: %v, want NotFound", err)
	}
}

// TestARMErrors: ARM's refusals end the background create with the
// cluster Failed and ARM's code in its status and in Wait's error.
func TestARMErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		setup func(*fakeARM)
		code  error
		msg   string
	}{
		{"refused", func(f *fakeARM) { f.createErr = "BadRequest" }, errcode.InvalidArgument, "BadRequest"},
		{"failed-while-polled", func(f *fakeARM) { f.pollErr = "QuotaExceeded" }, errcode.Internal, "QuotaExceeded"},
		{"ended-failed", func(f *fakeARM) { f.state = "Failed" }, errcode.Unavailable, "provisioning state Failed"},
	} {
		f := newFake()
		tc.setup(f)
		p := f.provider(t, nil)
		c, err := p.Provision(ctx, tc.name, driver.ClusterShape{AgentCount: 2, VMSize: "Standard_D3_v2", Purpose: "FastProd"})
		if err != nil {
			t.Fatalf("%s: Provision: %v", tc.name, err)
		}
		err = c.(waiter).Wait(ctx)
		if !errors.Is(err, tc.code) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Wait = %v, want %v with %q", tc.name, err, tc.code, tc.msg)
		}
		st, err := c.Status(ctx)
		if err != nil || st.State != driver.StateFailed || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], tc.msg) {
			t.Errorf("%s: status %+v %v, want Failed with %q", tc.name, st, err, tc.msg)
		}
		if err := c.ApplyService(ctx, drivertest.Spec("svc", nil, 1)); !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "is Failed") {
			t.Errorf("%s: ApplyService on a failed cluster: %v", tc.name, err)
		}
		if err := c.Delete(ctx); err != nil {
			t.Errorf("%s: deleting the failed cluster: %v", tc.name, err)
		}
		if _, err := p.Cluster(ctx, tc.name); !errors.Is(err, errcode.NotFound) {
			t.Errorf("%s: Cluster after Delete: %v", tc.name, err)
		}
	}

	p := newFake().provider(t, nil)
	for _, tc := range []struct {
		id   string
		want error
	}{
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/missing", errcode.NotFound},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm", errcode.InvalidArgument},
		{"/subscriptions/other/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c", errcode.InvalidArgument},
		{"not-an-id", errcode.InvalidArgument},
	} {
		if _, err := p.Attach(ctx, "x", driver.ClusterRef{ResourceID: tc.id}); !errors.Is(err, tc.want) {
			t.Errorf("Attach(%s) = %v, want %v", tc.id, err, tc.want)
		}
	}
	if _, err := aks.New(&aks.Options{SubscriptionID: sub}); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("New without a credential: %v", err)
	}
	noGroup, err := aks.New(&aks.Options{SubscriptionID: sub, Credential: &azfake.TokenCredential{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noGroup.Provision(ctx, "c", drivertest.CPUShape); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("Provision without a resource group: %v", err)
	}
}

// TestDeleteWhileCreating: deleting a cluster whose create ARM has not
// answered stops the background work (its goroutine ends), deletes the
// cluster through ARM and frees the name.
func TestDeleteWhileCreating(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFake()
	f.gate = make(chan struct{}) // never opened: ARM never answers the create
	p := f.provider(t, nil)
	c, err := p.Provision(ctx, "slow", drivertest.CPUShape)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.(waiter).Done():
	default:
		t.Fatal("Delete returned with the create still running")
	}
	f.mu.Lock()
	deleted := slices.Clone(f.deleted)
	f.mu.Unlock()
	if !slices.Equal(deleted, []string{"ml-rg/slow"}) {
		t.Errorf("ARM deletes %v, want ml-rg/slow", deleted)
	}
	if st, _ := c.Status(ctx); st.State != driver.StateDeleting {
		t.Errorf("status after Delete: %+v", st)
	}
	if _, err := p.Cluster(ctx, "slow"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Cluster after Delete: %v", err)
	}
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	again, err := p.Provision(ctx, "slow", drivertest.CPUShape)
	if err != nil {
		t.Fatalf("provisioning a deleted name again: %v", err)
	}
	// No kubeconfig: the create succeeds in ARM, the attach fails.
	if err := again.(waiter).Wait(ctx); err == nil {
		t.Error("attaching a cluster without a kubeconfig succeeded")
	}
	if err := again.Detach(ctx); err != nil {
		t.Fatal(err)
	}
}

// The create body of a GPU cluster in a virtual network.
func ExampleManagedCluster_network() {
	shape := driver.ClusterShape{AgentCount: 3, VMSize: "Standard_D3_v2", Location: "westeurope",
		Network: driver.ClusterNetwork{VNetResourceGroup: "net", VNetName: "vnet", SubnetName: "aks",
			ServiceCIDR: "10.2.0.0/16", DNSServiceIP: "10.2.0.10", DockerBridgeCIDR: "172.17.0.1/16"}}
	mc := aks.ManagedCluster("ml", shape, &aks.ClusterOptions{SubscriptionID: "sub"})
	np := mc.Properties.NetworkProfile
	fmt.Println(*mc.Properties.AgentPoolProfiles[0].VnetSubnetID)
	fmt.Println(*np.NetworkPlugin, *np.ServiceCidr, *np.DNSServiceIP)
	// Output:
	// /subscriptions/sub/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aks
	// azure 10.2.0.0/16 10.2.0.10
}

func ExampleManagedCluster() {
	mc := aks.ManagedCluster("ml-gpu", driver.ClusterShape{AgentCount: 2, VMSize: "Standard_NC6s_v3", GPUs: 1, Location: "westeurope"}, nil)
	p := mc.Properties.AgentPoolProfiles[0]
	fmt.Println(*mc.Location, *p.Name, *p.Count, *p.VMSize, *p.NodeLabels["kubernetes.azure.com/accelerator"], *p.NodeTaints[0])
	// Output: westeurope nodepool1 2 Standard_NC6s_v3 nvidia nvidia.com/gpu=present:NoSchedule
}
