package compute_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/driver/pending"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/simulator"
)

// slowProvider provisions simulated clusters asynchronously, as the AKS
// and kind providers do: Provision returns a pending cluster whose create
// finishes when release is closed (with fail's error, if set). It records
// the shapes it was given.
type slowProvider struct {
	*simulator.Simulator
	release chan struct{}
	fail    error

	mu     sync.Mutex
	shapes map[string]driver.ClusterShape
}

func (p *slowProvider) Provision(ctx context.Context, name string, shape driver.ClusterShape) (driver.Cluster, error) {
	p.mu.Lock()
	p.shapes[name] = shape
	p.mu.Unlock()
	return pending.Start(ctx, name, shape, func(ctx context.Context) (driver.Cluster, error) {
		select {
		case <-p.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.fail != nil {
			return nil, p.fail
		}
		return p.Simulator.Provision(ctx, name, shape)
	}, nil), nil
}

func newSlow(t *testing.T) (*aml.Workspace, *slowProvider) {
	t.Helper()
	ws, err := aml.Open(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	sim := simulator.New(nil)
	t.Cleanup(func() { sim.Close() })
	return ws, &slowProvider{Simulator: sim, release: make(chan struct{}), shapes: map[string]driver.ClusterShape{}}
}

// TestCreateSendsNetwork: the vnet and load-balancer settings reach the
// provider in the shape; the load-balancer subnet only for an internal
// load balancer.
func TestCreateSendsNetwork(t *testing.T) {
	t.Parallel()
	ws, p := newSlow(t)
	close(p.release)
	ctx := context.Background()
	vnet := compute.VNetConfig{ResourceGroup: "net-rg", Name: "ml-vnet", SubnetName: "aks-nodes",
		ServiceCIDR: "10.1.0.0/16", DNSServiceIP: "10.1.0.10", DockerBridgeCIDR: "172.17.0.1/16"}
	for _, tc := range []struct {
		name string
		cfg  compute.ProvisioningConfig
		want driver.ClusterNetwork
	}{
		{"internal", compute.ProvisioningConfig{VNet: vnet, LoadBalancerType: compute.InternalLoadBalancer, LoadBalancerSubnet: "ilb-subnet"},
			driver.ClusterNetwork{VNetResourceGroup: "net-rg", VNetName: "ml-vnet", SubnetName: "aks-nodes", ServiceCIDR: "10.1.0.0/16",
				DNSServiceIP: "10.1.0.10", DockerBridgeCIDR: "172.17.0.1/16", InternalLoadBalancer: true, LoadBalancerSubnet: "ilb-subnet"}},
		{"internal-default-subnet", compute.ProvisioningConfig{LoadBalancerType: compute.InternalLoadBalancer},
			driver.ClusterNetwork{InternalLoadBalancer: true, LoadBalancerSubnet: compute.DefaultLoadBalancerSubnet}},
		{"public", compute.ProvisioningConfig{VNet: vnet},
			driver.ClusterNetwork{VNetResourceGroup: "net-rg", VNetName: "ml-vnet", SubnetName: "aks-nodes", ServiceCIDR: "10.1.0.0/16",
				DNSServiceIP: "10.1.0.10", DockerBridgeCIDR: "172.17.0.1/16"}},
		{"defaults", compute.ProvisioningConfig{}, driver.ClusterNetwork{}},
	} {
		tg, err := compute.Create(ctx, ws, tc.name, tc.cfg, &compute.CreateOptions{Provider: p})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := tg.Wait(ctx); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		p.mu.Lock()
		got := p.shapes[tc.name]
		p.mu.Unlock()
		if got.Network != tc.want || got.AgentCount != 3 || got.VMSize != "Standard_D3_v2" {
			t.Errorf("%s: shape %+v, want network %+v", tc.name, got, tc.want)
		}
		if got.Network.HasSubnet() != (tc.want.SubnetName != "") {
			t.Errorf("%s: HasSubnet %v", tc.name, got.Network.HasSubnet())
		}
	}
}

// TestWaitForAsyncProvision: Create returns while the cluster is
// Creating; Wait blocks until the create ends and records its outcome.
func TestWaitForAsyncProvision(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, p := newSlow(t)
	tg, err := compute.Create(ctx, ws, "aks-slow", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := tg.Status(ctx); err != nil || st != compute.ProvisioningCreating {
		t.Fatalf("status right after Create: %s %v, want Creating", st, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	err = tg.Wait(short)
	cancelShort()
	if !errors.Is(err, errcode.DeadlineExceeded) {
		t.Fatalf("Wait on a create that has not finished: %v, want DeadlineExceeded", err)
	}
	close(p.release)
	start := time.Now()
	if err := tg.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Wait returned %v after the create finished", time.Since(start).Round(time.Millisecond))
	if rec, err := compute.Get(ctx, ws, "aks-slow", p); err != nil || rec.Record().ProvisioningState != compute.ProvisioningSucceeded {
		t.Errorf("recorded state: %+v %v", rec, err)
	}

	ws2, p2 := newSlow(t)
	p2.fail = errcode.New(errcode.InvalidArgument, "aks: create cluster \"aks-bad\": QuotaExceeded: not enough cores")
	close(p2.release)
	tg2, err := compute.Create(ctx, ws2, "aks-bad", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: p2})
	if err != nil {
		t.Fatal(err)
	}
	err = tg2.Wait(ctx)
	if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "Failed") || !strings.Contains(err.Error(), "QuotaExceeded: not enough cores") {
		t.Errorf("Wait on a failed create: %v, want the state and the create's message", err)
	}
	if err := tg2.Delete(ctx); err != nil {
		t.Errorf("deleting a failed target: %v", err)
	}
}
