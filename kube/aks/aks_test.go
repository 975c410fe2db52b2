package aks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6/fake"

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
	kubecfg   []byte
	createErr string // ARM error code for create, if any
	state     string // terminal provisioning state; default Succeeded
}

func (f *fakeARM) provider(t *testing.T) *aks.Provider {
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
			resp.SetTerminalResponse(http.StatusOK, armcontainerservice.ManagedClustersClientCreateOrUpdateResponse{ManagedCluster: out}, nil)
			return
		},
		Get: func(ctx context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientGetOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetResponse], errResp azfake.ErrorResponder) {
			f.mu.Lock()
			mc, ok := f.created[rg+"/"+name]
			f.mu.Unlock()
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
		ClientOptions: &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: fake.NewManagedClustersServerTransport(srv)}},
		PollFrequency: 10 * time.Millisecond, KubeconfigDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newFake() *fakeARM { return &fakeARM{created: map[string]armcontainerservice.ManagedCluster{}} }

// TestIntegrationCreateAndAttach creates a GPU cluster through the SDK's
// fake ARM server (whose admin kubeconfig is a real control plane's),
// deploys to it, and attaches it by resource id.
func TestIntegrationCreateAndAttach(t *testing.T) {
	shape := drivertest.GPUShape
	shape.Location = "eastus"
	cp := kubetest.Start(t, &kubetest.Options{Nodes: kubetest.NodesForShape(shape)})
	kc, err := os.ReadFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	f.kubecfg = kc
	p := f.provider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p.Provision(ctx, "gpu-aks", shape)
	if err != nil {
		t.Fatal(err)
	}
	mc := f.created["ml-rg/gpu-aks"]
	pool := mc.Properties.AgentPoolProfiles[0]
	for _, tc := range []struct{ what, got, want string }{
		{"location", *mc.Location, "eastus"},
		{"count", fmt.Sprint(*pool.Count), "1"},
		{"vm size", *pool.VMSize, "Standard_NC6s_v3"},
		{"gpu label", *pool.NodeLabels[kube.LabelAccelerator], "nvidia"},
		{"gpu taint", *pool.NodeTaints[0], "nvidia.com/gpu=present:NoSchedule"},
		{"dns prefix", *mc.Properties.DNSPrefix, "gpu-aks"},
	} {
		if tc.got != tc.want {
			t.Errorf("create body %s = %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	if st, err := p.ProvisioningStatus("gpu-aks"); err != nil || st.State != driver.StateSucceeded {
		t.Errorf("provisioning status %+v %v", st, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.State != driver.StateSucceeded || st.Shape.GPUs != 1 || st.Shape.VMSize != "Standard_NC6s_v3" {
		t.Errorf("cluster status %+v %v", st, err)
	}
	s := drivertest.Spec("gpu-svc", nil, 1)
	s.Versions[0].Replica.Image = "example.com/score@sha256:" + strings.Repeat("a", 64)
	s.Versions[0].Replica.GPUs = 1
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, c, "gpu-svc", driver.Healthy)
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/ml-rg/providers/Microsoft.ContainerService/managedClusters/gpu-aks", sub)
	if _, err := p.Attach(ctx, "again", driver.ClusterRef{ResourceID: id}); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("attaching the created cluster a second time: %v, want AlreadyExists", err)
	}
	// A second provider attaches it by resource id.
	c2, err := f.provider(t).Attach(ctx, "attached", driver.ClusterRef{ResourceID: id})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c2.ServiceStatus(ctx, "gpu-svc"); err != nil || st.State != driver.Healthy {
		t.Errorf("the service seen through the attached cluster: %+v %v", st, err)
	}
}

func TestARMErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFake()
	f.createErr = "BadRequest"
	p := f.provider(t)
	_, err := p.Provision(ctx, "small", driver.ClusterShape{AgentCount: 2, VMSize: "Standard_D3_v2", Purpose: "FastProd"})
	if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), "BadRequest") {
		t.Errorf("create refused by ARM: %v, want InvalidArgument with ARM's code", err)
	}
	if st, err := p.ProvisioningStatus("small"); err != nil || st.State != driver.StateFailed || len(st.Errors) != 1 {
		t.Errorf("status after a refused create: %+v %v", st, err)
	}
	f2 := newFake()
	f2.state = "Failed"
	if _, err := f2.provider(t).Provision(ctx, "doomed", drivertest.CPUShape); !errors.Is(err, errcode.Unavailable) || !strings.Contains(err.Error(), "Failed") {
		t.Errorf("create ending Failed: %v, want Unavailable naming the state", err)
	}
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
	if _, err := p.ProvisioningStatus("never"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("ProvisioningStatus(never) = %v", err)
	}
}

func ExampleManagedCluster() {
	mc := aks.ManagedCluster("ml-gpu", driver.ClusterShape{AgentCount: 2, VMSize: "Standard_NC6s_v3", GPUs: 1, Location: "westeurope"}, "")
	p := mc.Properties.AgentPoolProfiles[0]
	fmt.Println(*mc.Location, *p.Name, *p.Count, *p.VMSize, *p.NodeLabels["kubernetes.azure.com/accelerator"], *p.NodeTaints[0])
	// Output: westeurope nodepool1 2 Standard_NC6s_v3 nvidia nvidia.com/gpu=present:NoSchedule
}
