package simulator_test

import (
	"context"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/simulator"
)

// harness runs the conformance suite on simulators driven by a fake clock,
// so probe periods, back-off, token expiry and the five-minute scheduling
// limit pass in an instant.
type harness struct {
	clock *testingclock.FakeClock
}

func (h *harness) NewCluster(ctx context.Context, t *testing.T, shape driver.ClusterShape) driver.Cluster {
	t.Helper()
	sim := simulator.New(&simulator.Options{Clock: h.clock, DrainDelay: 50 * time.Millisecond})
	t.Cleanup(func() { sim.Close() })
	c, err := sim.Provision(ctx, "conformance", shape)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return c
}

func (h *harness) Advance(d time.Duration) bool {
	h.clock.Step(d)
	return true
}

// RemoveAllNodes fails every node of the cluster.
func (h *harness) RemoveAllNodes(ctx context.Context, c driver.Cluster) error {
	sc := c.(*simulator.Cluster)
	for _, n := range sc.Nodes() {
		if err := sc.RemoveNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, &harness{clock: testingclock.NewFakeClock(time.Now())})
}

// providerHarness runs the Provider cases on a fresh simulator; the
// existing cluster it attaches is an AKS resource id, which the simulator
// stands in for.
type providerHarness struct{}

func (providerHarness) NewProvider(ctx context.Context, t *testing.T) driver.Provider {
	sim := simulator.New(nil)
	t.Cleanup(func() { sim.Close() })
	return sim
}

func (providerHarness) ProvisionShape() (driver.ClusterShape, bool) { return drivertest.CPUShape, true }

func (providerHarness) Existing(ctx context.Context, t *testing.T) (driver.ClusterRef, bool) {
	return driver.ClusterRef{ResourceID: "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/existing"}, true
}

func TestProviderConformance(t *testing.T) {
	drivertest.RunProviderTests(t, providerHarness{})
}

// LocalStorage: the simulator's replicas run in this process.
func (h *harness) LocalStorage() bool { return true }
