package pending_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/driver/pending"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/simulator"
)

// waitDone fails the test unless the background goroutine has ended.
func waitDone(t *testing.T, c *pending.Cluster) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the provisioning goroutine is still running")
	}
}

// TestCreatingThenSucceeded: Creating with the requested shape and service
// calls refused until the work returns, then every call reaches the
// cluster it produced (a simulated one).
func TestCreatingThenSucceeded(t *testing.T) {
	t.Parallel()
	sim := simulator.New(nil)
	defer sim.Close()
	release := make(chan struct{})
	callCtx, cancelCall := context.WithCancel(context.Background())
	c := pending.Start(callCtx, "aks-1", drivertest.CPUShape, func(ctx context.Context) (driver.Cluster, error) {
		<-release
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return sim.Provision(ctx, "aks-1", drivertest.CPUShape)
	}, nil)
	// The Provision call's context ending does not stop the create.
	cancelCall()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	st, err := c.Status(ctx)
	if err != nil || st.State != driver.StateCreating || st.Shape != drivertest.CPUShape || len(st.Errors) != 0 {
		t.Fatalf("status while creating: %+v %v", st, err)
	}
	spec := drivertest.Spec("svc", drivertest.Echo("a"), 1)
	calls := map[string]error{"ApplyService": c.ApplyService(ctx, spec), "DeleteService": c.DeleteService(ctx, "svc")}
	_, calls["ServiceStatus"] = c.ServiceStatus(ctx, "svc")
	_, calls["ServiceLogs"] = c.ServiceLogs(ctx, "svc", 10, false)
	_, calls["IssueToken"] = c.IssueToken(ctx, "svc")
	for name, err := range calls {
		if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "cluster aks-1 is still Creating") {
			t.Errorf("%s while creating: %v, want FailedPrecondition \"cluster aks-1 is still Creating\"", name, err)
		}
	}
	close(release)
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = c.Status(ctx)
	if err != nil || st.State != driver.StateSucceeded || st.ScoringBaseURL == "" {
		t.Fatalf("status once provisioned: %+v %v", st, err)
	}
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, c, "svc", driver.Healthy)
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Cluster(ctx, "aks-1"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("the simulated cluster outlived Delete: %v", err)
	}
}

func TestFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	armErr := errcode.New(errcode.InvalidArgument, "aks: create cluster \"doomed\": BadRequest: the vm size is not allowed in the subscription")
	c := pending.Start(ctx, "doomed", drivertest.CPUShape, func(context.Context) (driver.Cluster, error) { return nil, armErr }, nil)
	if err := c.Wait(ctx); err != armErr {
		t.Errorf("Wait: %v, want the create's error as it was returned", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.State != driver.StateFailed || len(st.Errors) != 1 || st.Errors[0] != armErr.Error() {
		t.Errorf("status: %+v %v, want Failed with the create's message", st, err)
	}
	if err := c.ApplyService(ctx, drivertest.Spec("svc", nil, 1)); !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "cluster doomed is Failed: aks: create") {
		t.Errorf("ApplyService on a failed cluster: %v", err)
	}
	nothing := pending.Start(ctx, "empty", drivertest.CPUShape, func(context.Context) (driver.Cluster, error) { return nil, nil }, nil)
	if err := nothing.Wait(ctx); !errors.Is(err, errcode.Internal) {
		t.Errorf("work returning no cluster and no error: %v", err)
	}
}

// TestStopWhileCreating: Delete and Detach cancel the work, wait for its
// goroutine, run the provider's hooks once, and leave nothing running.
func TestStopWhileCreating(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		stop  func(*pending.Cluster, context.Context) error
		state driver.ProvisioningState
		del   int32
	}{
		{"Delete", (*pending.Cluster).Delete, driver.StateDeleting, 1},
		{"Detach", (*pending.Cluster).Detach, driver.StateCanceled, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			started := make(chan struct{})
			var deletes, forgets atomic.Int32
			var deletedReady driver.Cluster = &pending.Cluster{}
			c := pending.Start(ctx, "slow", drivertest.GPUShape, func(ctx context.Context) (driver.Cluster, error) {
				close(started)
				<-ctx.Done()
				return nil, ctx.Err()
			}, &pending.Options{
				Delete: func(_ context.Context, ready driver.Cluster) error { deletes.Add(1); deletedReady = ready; return nil },
				Forget: func() { forgets.Add(1) },
			})
			<-started
			if err := tc.stop(c, ctx); err != nil {
				t.Fatal(err)
			}
			waitDone(t, c)
			if err := tc.stop(c, ctx); err != nil {
				t.Fatalf("%s twice: %v", tc.name, err)
			}
			if deletes.Load() != tc.del*2 || forgets.Load() != 1 {
				t.Errorf("hooks: %d deletes, %d forgets; want %d and 1", deletes.Load(), forgets.Load(), tc.del*2)
			}
			if tc.del > 0 && deletedReady != nil {
				t.Errorf("Delete hook got %v, want nil (nothing was provisioned)", deletedReady)
			}
			st, _ := c.Status(ctx)
			if st.State != tc.state || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "provisioning was stopped") {
				t.Errorf("status after %s: %+v, want %s saying provisioning was stopped", tc.name, st, tc.state)
			}
		})
	}
}

// A create that ignores cancellation makes Delete give up when its context
// ends, without forgetting the cluster.
func TestDeleteBoundedByContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var forgets atomic.Int32
	c := pending.Start(context.Background(), "stuck", drivertest.CPUShape, func(context.Context) (driver.Cluster, error) {
		<-release
		return nil, errors.New("gave up")
	}, &pending.Options{Forget: func() { forgets.Add(1) }})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Delete(ctx); !errors.Is(err, errcode.DeadlineExceeded) {
		t.Errorf("Delete of a create that does not stop: %v, want DeadlineExceeded", err)
	}
	if forgets.Load() != 0 {
		t.Error("the provider forgot a cluster whose delete did not finish")
	}
	close(release)
	waitDone(t, c)
	if err := c.Delete(context.Background()); err != nil || forgets.Load() != 1 {
		t.Errorf("Delete once the create returned: %v, %d forgets", err, forgets.Load())
	}
}
