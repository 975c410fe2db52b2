package drivertest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/scoring"
)

// NodeRemover is implemented by harnesses that can take every node of a
// cluster away (a node failure). The suite then checks that a deployed
// service with no replica left is Unhealthy.
type NodeRemover interface {
	RemoveAllNodes(ctx context.Context, c driver.Cluster) error
}

// gatedHandler's Init waits until its gate opens, so a test can watch a
// deployment while it is in progress.
type gatedHandler struct {
	gate <-chan struct{}
	EchoHandler
}

func (g *gatedHandler) Init(ctx context.Context, dir string) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// testStates walks a service through Transitioning (init still running),
// Healthy, and, where the harness can remove nodes, Unhealthy. Failed and
// Unschedulable have their own cases.
func testStates(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	gate := make(chan struct{})
	spec := Spec("stately", func() scoring.Handler { return &gatedHandler{gate: gate, EchoHandler: EchoHandler{Tag: "s"}} }, 1)
	if err := c.ApplyService(ctx, spec); err != nil {
		close(gate)
		t.Fatal(err)
	}
	st, err := c.ServiceStatus(ctx, "stately")
	if err != nil || st.State != driver.Transitioning {
		close(gate)
		t.Fatalf("while init runs: %+v %v, want Transitioning", st, err)
	}
	if code, _, _ := Score(ctx, st.ScoringURI, "", `{}`); code != http.StatusServiceUnavailable {
		t.Errorf("scoring before any replica is ready: %d, want 503", code)
	}
	close(gate)
	st = WaitState(ctx, t, c, "stately", driver.Healthy, driver.Failed)
	if st.State != driver.Healthy {
		t.Fatalf("after init: %s (%s), want Healthy", st.State, st.Message)
	}
	nr, ok := h.(NodeRemover)
	if !ok {
		t.Log("harness cannot remove nodes: Unhealthy not exercised")
		return
	}
	if err := nr.RemoveAllNodes(ctx, c); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st = WaitState(ctx2, t, c, "stately", driver.Unhealthy)
	if st.Message == "" {
		t.Errorf("Unhealthy without a reason")
	}
	if code, _, _ := Score(ctx, st.ScoringURI, "", `{}`); code != http.StatusServiceUnavailable {
		t.Errorf("scoring an Unhealthy service: %d, want 503", code)
	}
}
