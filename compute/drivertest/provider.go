package drivertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
)

// ProviderHarness gives the Provider cases a backend's driver.Provider.
type ProviderHarness interface {
	// NewProvider returns a provider with no clusters. The cases delete or
	// detach every cluster they make; the harness releases the provider
	// itself (t.Cleanup).
	NewProvider(ctx context.Context, t *testing.T) driver.Provider
	// ProvisionShape is the shape the cases provision, and false when the
	// provider does not provision clusters: its Provision must then answer
	// Unimplemented.
	ProvisionShape() (driver.ClusterShape, bool)
	// Existing returns a reference to an existing cluster the provider can
	// attach (started for t and stopped in t.Cleanup), and false when the
	// provider does not attach clusters: its Attach must then answer
	// Unimplemented.
	Existing(ctx context.Context, t *testing.T) (driver.ClusterRef, bool)
}

// RunProviderTests runs the Provider half of the contract against h:
// Provision and Attach with AlreadyExists, Cluster with NotFound, Detach,
// Delete, and a second attachment of one cluster refused.
func RunProviderTests(t *testing.T, h ProviderHarness) {
	t.Run("ProvisionAndDelete", func(t *testing.T) { testProvision(t, h) })
	t.Run("AttachAndDetach", func(t *testing.T) { testAttach(t, h) })
}

// wantCode fails t unless err carries code.
func wantCode(t *testing.T, what string, err error, code *errcode.Code) {
	t.Helper()
	if !errors.Is(err, code) {
		t.Fatalf("%s: got %v, want %v", what, err, code)
	}
}

// waitProvisioned waits, woken by the cluster's Watch, until c's
// provisioning ends, and fails t unless it Succeeded.
func waitProvisioned(ctx context.Context, t *testing.T, c driver.Cluster) {
	t.Helper()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	changes := c.Watch(wctx)
	tick := time.NewTicker(time.Second) // the fallback the contract allows
	defer tick.Stop()
	for {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatalf("cluster %s: status: %v", c.Name(), err)
		}
		switch st.State {
		case driver.StateSucceeded:
			return
		case driver.StateFailed, driver.StateCanceled:
			t.Fatalf("cluster %s: provisioning ended %s: %v", c.Name(), st.State, st.Errors)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster %s: still %s: %v", c.Name(), st.State, ctx.Err())
		case <-changes:
		case <-tick.C:
		}
	}
}

// providerCtx bounds a Provider case: provisioning a real cluster takes
// longer than a service case.
func providerCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testProvision(t *testing.T, h ProviderHarness) {
	ctx := providerCtx(t)
	p := h.NewProvider(ctx, t)
	shape, ok := h.ProvisionShape()
	if !ok {
		_, err := p.Provision(ctx, "prov", CPUShape)
		wantCode(t, "Provision on a provider that only attaches", err, errcode.Unimplemented)
		t.Skip("the provider attaches clusters only; Provision is Unimplemented as the contract says")
	}
	c, err := p.Provision(ctx, "prov", shape)
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = c.Delete(context.WithoutCancel(ctx))
		}
	})
	if c.Name() != "prov" {
		t.Errorf("Name() = %q, want prov", c.Name())
	}
	_, err = p.Provision(ctx, "prov", shape)
	wantCode(t, "a second Provision of the same name", err, errcode.AlreadyExists)
	waitProvisioned(ctx, t, c)
	got, err := p.Cluster(ctx, "prov")
	if err != nil || got.Name() != "prov" {
		t.Fatalf("Cluster(prov) = %v, %v", got, err)
	}
	_, err = p.Cluster(ctx, "never-made")
	wantCode(t, "Cluster of an unknown name", err, errcode.NotFound)
	_, err = p.Provision(ctx, "prov", shape)
	wantCode(t, "Provision of a running cluster's name", err, errcode.AlreadyExists)

	if err := c.Delete(ctx); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted = true
	_, err = p.Cluster(ctx, "prov")
	wantCode(t, "Cluster after Delete", err, errcode.NotFound)
}

func testAttach(t *testing.T, h ProviderHarness) {
	ctx := providerCtx(t)
	p := h.NewProvider(ctx, t)
	ref, ok := h.Existing(ctx, t)
	if !ok {
		_, err := p.Attach(ctx, "att", driver.ClusterRef{Kubeconfig: "/nonexistent/kubeconfig", Context: "x"})
		wantCode(t, "Attach on a provider that only provisions", err, errcode.Unimplemented)
		t.Skip("the provider provisions clusters only; Attach is Unimplemented as the contract says")
	}
	c, err := p.Attach(ctx, "att", ref)
	if err != nil {
		t.Fatal(err)
	}
	detached := false
	t.Cleanup(func() {
		if !detached {
			_ = c.Detach(context.WithoutCancel(ctx))
		}
	})
	waitProvisioned(ctx, t, c)
	_, err = p.Attach(ctx, "att", ref)
	wantCode(t, "a second Attach under the same name", err, errcode.AlreadyExists)
	_, err = p.Attach(ctx, "att-again", ref)
	wantCode(t, "the same cluster attached under a second name", err, errcode.AlreadyExists)
	if _, err := p.Cluster(ctx, "att-again"); !errors.Is(err, errcode.NotFound) {
		t.Fatalf("the refused second attachment is known to the provider: %v", err)
	}
	got, err := p.Cluster(ctx, "att")
	if err != nil || got.Name() != "att" {
		t.Fatalf("Cluster(att) = %v, %v", got, err)
	}

	// An attached cluster is not the provider's to delete.
	err = c.Delete(ctx)
	wantCode(t, "Delete of an attached cluster", err, errcode.Unimplemented)
	if _, err := p.Cluster(ctx, "att"); err != nil {
		t.Fatalf("the attached cluster is gone after a refused Delete: %v", err)
	}

	if err := c.Detach(ctx); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	detached = true
	_, err = p.Cluster(ctx, "att")
	wantCode(t, "Cluster after Detach", err, errcode.NotFound)
	// Detach forgot the cluster: it can be attached again, under any name.
	again, err := p.Attach(ctx, "att-again", ref)
	if err != nil {
		t.Fatalf("Attach after Detach: %v", err)
	}
	if err := again.Detach(ctx); err != nil {
		t.Fatalf("Detach: %v", err)
	}
}
