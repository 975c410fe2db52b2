package simulator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
)

func newSim(t *testing.T, shape driver.ClusterShape) (*simulator.Cluster, *testingclock.FakeClock) {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Now())
	sim := simulator.New(&simulator.Options{Clock: clk, DrainDelay: 20 * time.Millisecond})
	t.Cleanup(func() { sim.Close() })
	if _, err := sim.Provision(context.Background(), "sim", shape); err != nil {
		t.Fatal(err)
	}
	c, _ := sim.SimCluster("sim")
	return c, clk
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProvisionTwiceAndAttachTwice(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	sim := simulator.New(nil)
	defer sim.Close()
	if _, err := sim.Provision(ctx, "a", drivertest.CPUShape); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Provision(ctx, "a", drivertest.CPUShape); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("second Provision(a) = %v, want AlreadyExists", err)
	}
	ref := driver.ClusterRef{ResourceID: "/subscriptions/s/resourcegroups/g/providers/Microsoft.ContainerService/managedClusters/prod"}
	if _, err := sim.Attach(ctx, "b", ref); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Attach(ctx, "c", ref); !errors.Is(err, errcode.AlreadyExists) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("attaching the same cluster twice = %v, want AlreadyExists naming b", err)
	}
	b, _ := sim.Cluster(ctx, "b")
	if err := b.Delete(ctx); !errors.Is(err, errcode.Unimplemented) {
		t.Errorf("Delete of an attached cluster = %v, want Unimplemented", err)
	}
	if err := b.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Attach(ctx, "c", ref); err != nil {
		t.Errorf("attach after detach: %v", err)
	}
}

// A scheduler that reserves system capacity: a service asking for all of a
// node's nominal CPU does not fit, with the scheduler's message.
func TestSchedulingHonoursReservedCapacity(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	shape := driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14, Purpose: "DevTest"}
	c, _ := newSim(t, shape)
	spec := drivertest.Spec("big", drivertest.Echo("x"), 1)
	spec.Versions[0].Replica.CPU = 4
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "big", driver.Unschedulable)
	if want := "0/1 nodes are available: 1 Insufficient cpu."; st.Message != want {
		t.Errorf("message %q, want %q", st.Message, want)
	}
	// 3.4 cores fit: 4 minus 140m kube-reserved minus 400m system pods.
	spec.Versions[0].Replica.CPU = 3.4
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, c, "big", driver.Healthy)
}

func TestLivenessProbeRestartsReplica(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, clk := newSim(t, drivertest.CPUShape)
	spec := drivertest.Spec("probed", drivertest.Echo("x"), 1)
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, c, "probed", driver.Healthy)
	reps, _ := c.Replicas("probed")
	if err := c.InjectFault(reps[0].ID, simulator.Fault{FailLiveness: true}); err != nil {
		t.Fatal(err)
	}
	// Before initial_delay_seconds (310 s) nothing is probed.
	clk.Step(300 * time.Second)
	waitReplicas(ctx, t, c, "probed", func(r []simulator.ReplicaInfo) bool { return r[0].Restarts == 0 && r[0].State == "Running" })
	// Three failed probes, 10 s apart, restart it.
	c.Sync()
	for i := 0; i < 3; i++ {
		clk.Step(10 * time.Second)
		c.Sync()
	}
	waitReplicas(ctx, t, c, "probed", func(r []simulator.ReplicaInfo) bool { return r[0].Restarts >= 1 })
	c.ClearFault(reps[0].ID)
	drivertest.WaitFor(ctx, t, c, "probed", func(st *driver.ServiceStatus) bool {
		return st.State == driver.Healthy && st.Versions[0].Ready == 1
	})
}

func waitReplicas(ctx context.Context, t *testing.T, c *simulator.Cluster, svc string, ok func([]simulator.ReplicaInfo) bool) []simulator.ReplicaInfo {
	t.Helper()
	for {
		r, err := c.Replicas(svc)
		if err == nil && len(r) > 0 && ok(r) {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replicas of %s: condition not reached: %+v %v", svc, r, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestKilledReplicaRestartsAndServiceRecovers(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, _ := newSim(t, drivertest.CPUShape)
	if err := c.ApplyService(ctx, drivertest.Spec("killme", drivertest.Echo("x"), 2)); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "killme", driver.Healthy)
	reps, _ := c.Replicas("killme")
	if err := c.KillReplica(ctx, reps[0].ID); err != nil {
		t.Fatal(err)
	}
	// The other replica keeps serving.
	if code, body, err := drivertest.Score(ctx, st.ScoringURI, "", `{}`); code != 200 {
		t.Fatalf("score with one replica killed: %d %q %v", code, body, err)
	}
	waitReplicas(ctx, t, c, "killme", func(r []simulator.ReplicaInfo) bool {
		return r[0].Restarts == 1 && r[0].State == "Running"
	})
	if err := c.KillReplica(ctx, "nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("KillReplica(unknown) = %v, want NotFound", err)
	}
}

func TestRemoveNodeReschedules(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, _ := newSim(t, drivertest.CPUShape)
	if err := c.ApplyService(ctx, drivertest.Spec("mover", drivertest.Echo("x"), 1)); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, c, "mover", driver.Healthy)
	reps, _ := c.Replicas("mover")
	from := reps[0].Node
	if err := c.RemoveNode(ctx, from); err != nil {
		t.Fatal(err)
	}
	reps = waitReplicas(ctx, t, c, "mover", func(r []simulator.ReplicaInfo) bool { return r[0].State == "Running" && r[0].Node != from })
	if len(c.Nodes()) != 2 {
		t.Errorf("nodes %v, want 2 left", c.Nodes())
	}
	// With every node gone the replica stays Pending: the service is
	// Unhealthy (it was deployed) and callers get 503.
	for _, n := range c.Nodes() {
		if err := c.RemoveNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	st := drivertest.WaitState(ctx, t, c, "mover", driver.Unhealthy)
	if code, _, _ := drivertest.Score(ctx, st.ScoringURI, "", `{}`); code != 503 {
		t.Errorf("score with no node: %d, want 503", code)
	}
}

// slowHandler blocks each Run until released, to hold requests in flight.
type slowHandler struct{ release chan struct{} }

func (s *slowHandler) Init(ctx context.Context, dir string) error { return nil }
func (s *slowHandler) Run(ctx context.Context, in []byte) ([]byte, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return []byte(`"done"`), nil
}

func TestAutoscalerScalesUpAndDownOnScriptedClock(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, clk := newSim(t, drivertest.CPUShape)
	release := make(chan struct{})
	h := &slowHandler{release: release}
	spec := drivertest.Spec("auto", func() scoring.Handler { return h }, 0)
	spec.Versions[0].Scale = driver.Scale{Autoscale: true, Min: 1, Max: 4, TargetUtilization: 70, RefreshPeriod: time.Second}
	spec.Versions[0].Replica.MaxQueueWait = 30 * time.Second
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "auto", driver.Healthy)
	// Four requests in flight on one replica: utilization 400% → scale up.
	var wg sync.WaitGroup
	uri := st.ScoringURI
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drivertest.Score(ctx, uri, "", fmt.Sprint(i))
		}()
	}
	waitLoad(ctx, t, c, "auto", 4)
	// One refresh period of sustained load: utilization 400% of the
	// target's 70% → ceil(4 / 0.7) = 6, clamped to the maximum 4.
	c.Sync()
	clk.Step(time.Second)
	c.Sync()
	st = drivertest.WaitFor(ctx, t, c, "auto", func(st *driver.ServiceStatus) bool {
		return st.State == driver.Healthy && st.Versions[0].Desired == 4 && st.Versions[0].Ready == 4
	})
	// The load ends; the count holds for about a minute (conservative
	// scale-down), then falls to the minimum.
	close(release)
	wg.Wait()
	waitLoad(ctx, t, c, "auto", 0)
	for i := 0; i < 30; i++ {
		clk.Step(time.Second)
		c.Sync()
	}
	if st, _ := c.ServiceStatus(ctx, "auto"); st.Versions[0].Desired != 4 {
		t.Fatalf("desired %d 30 s after the load ended, want 4 (scale-down waits about a minute)", st.Versions[0].Desired)
	}
	for i := 0; i < 40; i++ {
		clk.Step(time.Second)
		c.Sync()
	}
	drivertest.WaitFor(ctx, t, c, "auto", func(st *driver.ServiceStatus) bool {
		return st.Versions[0].Desired == 1 && st.Versions[0].Replicas == 1
	})
}

// A step in load gets replicas before the next refresh period: scale-up is
// checked on every pass of the control loop, so requests queued behind one
// replica do not wait out max_request_wait_time for the period's decision.
func TestAutoscalerScalesUpBetweenRefreshPeriods(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, clk := newSim(t, drivertest.CPUShape)
	release := make(chan struct{})
	h := &slowHandler{release: release}
	spec := drivertest.Spec("eager", func() scoring.Handler { return h }, 0)
	spec.Versions[0].Scale = driver.Scale{Autoscale: true, Min: 1, Max: 4, TargetUtilization: 70, RefreshPeriod: time.Second}
	spec.Versions[0].Replica.MaxQueueWait = 30 * time.Second
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "eager", driver.Healthy)
	// A period without load: the decision holds one replica.
	clk.Step(time.Second)
	c.Sync()
	var wg sync.WaitGroup
	defer func() { close(release); wg.Wait() }()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drivertest.Score(ctx, st.ScoringURI, "", fmt.Sprint(i))
		}()
	}
	waitLoad(ctx, t, c, "eager", 4)
	// A tenth of the period later: the period's average in flight is at
	// least 4 × 2 / 6 (the idle samples at its start and two at 4), which
	// calls for at least two replicas at 70%.
	clk.Step(100 * time.Millisecond)
	c.Sync()
	if st, _ := c.ServiceStatus(ctx, "eager"); st.Versions[0].Desired < 2 {
		t.Fatalf("desired %d a tenth of a refresh period after the load rose, want ≥ 2", st.Versions[0].Desired)
	}
	drivertest.WaitFor(ctx, t, c, "eager", func(st *driver.ServiceStatus) bool {
		return st.Versions[0].Ready >= 2
	})
}

func waitLoad(ctx context.Context, t *testing.T, c *simulator.Cluster, svc string, inflight int) {
	t.Helper()
	for {
		l, err := c.Router().Load(svc)
		if err == nil && len(l) == 1 && (l[0].InFlight >= inflight && inflight > 0 || inflight == 0 && l[0].InFlight == 0) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("load never reached %d: %+v %v", inflight, l, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestServiceLogs(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, _ := newSim(t, drivertest.CPUShape)
	if err := c.ApplyService(ctx, drivertest.Spec("logged", drivertest.Echo("x"), 1)); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "logged", driver.Healthy)
	drivertest.Score(ctx, st.ScoringURI, "", `{}`)
	logs, err := c.ServiceLogs(ctx, "logged", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 || !strings.HasPrefix(logs[0], "logged-") {
		t.Errorf("logs %q: want lines prefixed with the replica id", logs)
	}
	_ = http.StatusOK
}

func TestImageReplicaWithoutEngineIsRefused(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, _ := newSim(t, drivertest.CPUShape)
	spec := drivertest.Spec("boxed", drivertest.Echo("x"), 1)
	spec.Versions[0].Replica.Image = "aksml/env:0123"
	err := c.ApplyService(ctx, spec)
	if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "no Docker engine") {
		t.Fatalf("ApplyService of an image replica without an engine: %v", err)
	}
	if _, err := c.ServiceStatus(ctx, "boxed"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("a refused service exists: %v", err)
	}
}

// Each endpoint version's autoscaler sees its own share of the load: load
// sent to one version scales that version only. Moving weights is in force
// in the router when ApplyService returns, before any replica changes.
func TestEndpointVersionsScaleOnTheirOwnLoad(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	c, clk := newSim(t, drivertest.CPUShape)
	release := make(chan struct{})
	h := &slowHandler{release: release}
	spec := drivertest.EndpointSpec("ep",
		drivertest.EndpointVersion{Name: "blue", TrafficPercent: 100, IsDefault: true, Handler: func() scoring.Handler { return h }},
		drivertest.EndpointVersion{Name: "green", Handler: func() scoring.Handler { return h }})
	for i := range spec.Versions {
		spec.Versions[i].Scale = driver.Scale{Autoscale: true, Min: 1, Max: 3, TargetUtilization: 70, RefreshPeriod: time.Second}
	}
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "ep", driver.Healthy)
	var wg sync.WaitGroup
	uri := st.ScoringURI
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drivertest.Score(ctx, uri, "", "{}") // all to blue (100 %)
		}()
	}
	for {
		l, _ := c.Router().Load("ep")
		if len(l) == 2 && l[0].InFlight == 3 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("load never reached blue")
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.Sync()
	clk.Step(time.Second)
	c.Sync()
	st = drivertest.WaitFor(ctx, t, c, "ep", func(st *driver.ServiceStatus) bool {
		return st.State == driver.Healthy && st.Versions[0].Desired == 3
	})
	if st.Versions[1].Desired != 1 {
		t.Errorf("green got no load but wants %d replicas", st.Versions[1].Desired)
	}
	// Shift all traffic to green: the router has the new weights when
	// ApplyService returns, while blue keeps its replicas.
	spec.Versions[0].TrafficPercent, spec.Versions[1].TrafficPercent = 0, 100
	spec.Versions[0].IsDefault, spec.Versions[1].IsDefault = false, true
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	stats, err := c.Router().Stats("ep")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range stats.Versions {
		if want := map[string]float64{"blue": 0, "green": 100}[v.Name]; v.EffectivePercent != want {
			t.Errorf("version %s: effective %v%% right after ApplyService, want %v%%", v.Name, v.EffectivePercent, want)
		}
	}
	if st, _ := c.ServiceStatus(ctx, "ep"); st.Versions[0].Desired != 3 {
		t.Errorf("blue scaled to %d before its load went", st.Versions[0].Desired)
	}
	close(release)
	wg.Wait()
}
