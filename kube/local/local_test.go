package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/kube/local"
	"github.com/aksml/aksml/scoring"
)

// caseClock is the running case's clock (the suite runs its cases one at a
// time).
type caseClock struct{ h *harness }

func (c caseClock) Now() time.Time                  { return c.h.clk.Load().Now() }
func (c caseClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// testOptions make crash loops quick: a crashed container restarts after
// 100 ms, then 200 ms, at most 800 ms.
func testOptions(clk interface {
	Now() time.Time
	Since(time.Time) time.Duration
}) *local.Options {
	// A deleted pod keeps serving for 3 s: the front-end learns it is
	// not ready through an EndpointSlice, which the controller-manager
	// updates late on a busy machine (1 s once let a rolling update under
	// load lose a request to a replica already stopping).
	o := &local.Options{RestartBackOff: 100 * time.Millisecond, MaxRestartBackOff: 800 * time.Millisecond, DrainDelay: 3 * time.Second}
	if clk != nil {
		o.Clock = clk
	}
	return o
}

func start(t *testing.T, name string, shape driver.ClusterShape, opts *local.Options) *local.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := local.Start(ctx, name, shape, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	t.Logf("local cluster %s (%d nodes) started in %v", name, shape.AgentCount, c.Started())
	return c
}

// harness gives the conformance suite namespaces of two local clusters:
// three CPU nodes (drivertest.CPUShape) and one GPU node
// (drivertest.GPUShape).
type harness struct {
	cpu, gpu *local.Cluster
	clk      atomic.Pointer[drivertest.OffsetClock]
	seq      atomic.Int64
}

func (h *harness) NewCluster(ctx context.Context, t *testing.T, shape driver.ClusterShape) driver.Cluster {
	t.Helper()
	lc := h.cpu
	if shape.GPUs > 0 {
		lc = h.gpu
	}
	h.clk.Store(&drivertest.OffsetClock{})
	c, err := lc.InNamespace(ctx, fmt.Sprintf("case-%d", h.seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		drivertest.TLSOff(t, c, lc.ScoringBaseURL())
		_ = c.Detach(context.Background())
	})
	return c
}

// LocalStorage: the local cluster's pods are processes of this machine.
func (h *harness) LocalStorage() bool { return true }

func (h *harness) Advance(d time.Duration) bool {
	h.clk.Load().Advance(d)
	return true
}

// TestIntegrationLocalClusterConformance runs the whole driver conformance
// suite against the kube driver on local clusters: real API server,
// controllers and scheduler; virtual-kubelet nodes that run every pod
// (Go models as the scoring server in this process on the pod's loopback
// address), probe it and restart it; the in-cluster front-end as a pod,
// reached through the cluster's load balancer. No case is skipped.
func TestIntegrationLocalClusterConformance(t *testing.T) {
	h := &harness{}
	h.clk.Store(&drivertest.OffsetClock{})
	var wg sync.WaitGroup
	var cpu, gpu *local.Cluster
	var cpuErr, gpuErr error
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	wg.Add(2)
	go func() {
		defer wg.Done()
		cpu, cpuErr = local.Start(ctx, "cpu", drivertest.CPUShape, testOptions(caseClock{h}))
	}()
	go func() {
		defer wg.Done()
		gpu, gpuErr = local.Start(ctx, "gpu", drivertest.GPUShape, testOptions(caseClock{h}))
	}()
	wg.Wait()
	for _, c := range []*local.Cluster{cpu, gpu} {
		if c != nil {
			t.Cleanup(func() { _ = c.Close() })
		}
	}
	if cpuErr != nil || gpuErr != nil {
		t.Fatal(cpuErr, gpuErr)
	}
	t.Logf("local clusters started in %v (3 CPU nodes) and %v (1 GPU node)", cpu.Started(), gpu.Started())
	h.cpu, h.gpu = cpu, gpu
	drivertest.RunConformanceTests(t, h)
}

// TestIntegrationLocalClusterPods checks what the kubelet side does: real
// restarts with back-off and logs of the previous run, liveness probes,
// and the front-end's autoscaler writing the scale subresource.
func TestIntegrationLocalClusterPods(t *testing.T) {
	c := start(t, "pods", driver.ClusterShape{AgentCount: 2, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14}, testOptions(nil))
	t.Run("CrashLoopWithPreviousLogs", func(t *testing.T) { testCrashLoop(t, c) })
	t.Run("AutoscalerWritesScale", func(t *testing.T) { testAutoscale(t, c) })
	t.Run("KubectlLogs", func(t *testing.T) { testKubectlLogs(t, c) })
	t.Run("LivenessRestarts", func(t *testing.T) { testLiveness(t, c) })
	t.Run("FrontEndPodsAreProcesses", func(t *testing.T) { testFrontEndProcesses(t, c) })
	t.Run("ScorePyProcess", func(t *testing.T) { testScorePyProcess(t, c) })
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testCrashLoop(t *testing.T, c *local.Cluster) {
	ctx := ctxFor(t, 60*time.Second)
	s := drivertest.Spec("crashy", func() scoring.Handler {
		return &drivertest.EchoHandler{InitErr: fmt.Errorf("model file azureml-models/broken/1/model.pkl not found")}
	}, 1)
	s.Namespace = "crash"
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), "crashy") })
	st := drivertest.WaitState(ctx, t, c, "crashy", driver.Failed)
	if !strings.Contains(st.Message, "model.pkl not found") {
		t.Errorf("Failed message %q lacks the init error", st.Message)
	}
	pods, err := c.ControlPlane().Client.CoreV1().Pods("crash").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v %v", pods, err)
	}
	cs := pods.Items[0].Status.ContainerStatuses[0]
	if cs.RestartCount < 3 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("container status %+v: want ≥3 restarts and a last termination with exit code 1", cs)
	}
	if cs.State.Waiting != nil && cs.State.Waiting.Reason != "CrashLoopBackOff" {
		t.Errorf("waiting reason %q, want CrashLoopBackOff", cs.State.Waiting.Reason)
	}
}

// slow answers after 200 ms, so a few clients keep a replica busy.
var slow = drivertest.Func(func(ctx context.Context, in []byte) ([]byte, error) {
	select {
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
	}
	return []byte(`{"ok":1}`), nil
})

// testAutoscale: the in-cluster front-end's autoscaler sees the load and
// scales the Deployment through its scale subresource; a re-apply keeps
// the autoscaler's count.
func testAutoscale(t *testing.T, c *local.Cluster) {
	ctx := ctxFor(t, 60*time.Second)
	s := drivertest.Spec("elastic", slow, 0)
	s.Namespace = "scale"
	s.Versions[0].Scale = driver.Scale{Autoscale: true, Min: 1, Max: 3, TargetUtilization: 70, RefreshPeriod: 100 * time.Millisecond}
	s.Versions[0].Replica.MaxQueueWait = 5 * time.Second
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), "elastic") })
	st := drivertest.WaitState(ctx, t, c, "elastic", driver.Healthy)
	if st.Versions[0].Desired != 1 {
		t.Fatalf("autoscaled service starts with %d replicas, want min 1", st.Versions[0].Desired)
	}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				code, _, _ := drivertest.Score(lctx, st.ScoringURI, "", `{}`)
				if code == 200 {
					ok.Add(1)
				} else if lctx.Err() == nil {
					bad.Add(1)
				}
			}
		}()
	}
	drivertest.WaitFor(ctx, t, c, "elastic", func(st *driver.ServiceStatus) bool {
		return st.Versions[0].Desired == 3 && st.Versions[0].Ready == 3
	})
	stop()
	wg.Wait()
	t.Logf("scaled 1 → 3 under 4 clients: %d answered, %d not 200", ok.Load(), bad.Load())
	if ok.Load() == 0 {
		t.Error("no request answered through the front-end")
	}
	d, err := c.ControlPlane().Client.AppsV1().Deployments("scale").Get(ctx, "elastic", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 3 {
		t.Fatalf("deployment replicas %v (%v), want the autoscaler's 3", d.Spec.Replicas, err)
	}
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	d, err = c.ControlPlane().Client.AppsV1().Deployments("scale").Get(ctx, "elastic", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 3 {
		t.Errorf("after re-apply: %v replicas (%v), want the autoscaler's 3", d.Spec.Replicas, err)
	}
}

// testKubectlLogs: kubectl reads a replica's log through the node's
// kubelet API, as on AKS.
func testKubectlLogs(t *testing.T, c *local.Cluster) {
	ctx := ctxFor(t, 60*time.Second)
	s := drivertest.Spec("chatty", drivertest.Echo("c"), 1)
	s.Namespace = "logs"
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), "chatty") })
	drivertest.WaitState(ctx, t, c, "chatty", driver.Healthy)
	out, err := c.ControlPlane().Kubectl(ctx, "-n", "logs", "logs", "deployment/chatty")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "listening on http://127.") {
		t.Errorf("kubectl logs: %q, want the scoring server's listening line on its loopback address", out)
	}
	lines, err := c.ServiceLogs(ctx, "chatty", 10, false)
	if err != nil || !strings.Contains(strings.Join(lines, "\n"), "listening on") {
		t.Errorf("ServiceLogs: %q %v", lines, err)
	}
}

// testLiveness: a container whose liveness probe keeps failing is killed
// and restarted, the probe's failure in its last termination.
func testLiveness(t *testing.T, c *local.Cluster) {
	ctx := ctxFor(t, 60*time.Second)
	s := drivertest.Spec("lively", drivertest.Echo("l"), 1)
	s.Namespace = "live"
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), "lively") })
	drivertest.WaitState(ctx, t, c, "lively", driver.Healthy)
	// The same image with a liveness probe on a path the scoring server
	// answers 404.
	apps := c.ControlPlane().Client.AppsV1().Deployments("live")
	d, err := apps.Get(ctx, "lively", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d = d.DeepCopy()
	d.ObjectMeta = metav1.ObjectMeta{Name: "lively-probed", Namespace: "live"}
	d.Spec.Selector.MatchLabels = map[string]string{"app": "lively-probed"}
	d.Spec.Template.Labels = map[string]string{"app": "lively-probed"}
	ctr := &d.Spec.Template.Spec.Containers[0]
	ctr.LivenessProbe.HTTPGet.Path = "/no-such-path"
	ctr.LivenessProbe.InitialDelaySeconds, ctr.LivenessProbe.PeriodSeconds, ctr.LivenessProbe.FailureThreshold = 0, 1, 2
	if _, err := apps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = apps.Delete(context.Background(), "lively-probed", metav1.DeleteOptions{}) })
	for {
		pods, err := c.ControlPlane().Client.CoreV1().Pods("live").List(ctx, metav1.ListOptions{LabelSelector: "app=lively-probed"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 1 && len(pods.Items[0].Status.ContainerStatuses) == 1 {
			cs := pods.Items[0].Status.ContainerStatuses[0]
			if term := cs.LastTerminationState.Terminated; cs.RestartCount >= 1 && term != nil {
				if term.ExitCode != 137 || !strings.Contains(term.Message, "Liveness probe failed: HTTP probe failed with statuscode: 404") {
					t.Errorf("last termination %+v, want exit 137 for a failed liveness probe (404)", term)
				}
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no restart for a failing liveness probe: %+v", pods.Items)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// testScorePyProcess: an entry script runs as a scoring-server process per
// pod; one whose init raises exits, is restarted with back-off, and fails
// the service with Python's own error.
func testScorePyProcess(t *testing.T, c *local.Cluster) {
	ctx := ctxFor(t, 90*time.Second)
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("score.py", "import json, os\ndef init():\n    print('init pid', os.getpid(), flush=True)\ndef run(raw):\n    return {'pid': os.getpid(), 'sum': sum(json.loads(raw)['data'])}\n")
	write("broken.py", "def init():\n    raise RuntimeError('model file missing: model.pkl')\ndef run(raw):\n    return raw\n")
	spec := func(name, script string) *driver.ServiceSpec {
		s := drivertest.Spec(name, nil, 1)
		s.Namespace = "py"
		r := &s.Versions[0].Replica
		r.EntryScript, r.SourceDir, r.Interpreter = script, dir, "/usr/bin/python3"
		return s
	}
	if err := c.ApplyService(ctx, spec("pyok", "score.py")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), "pyok") })
	st := drivertest.WaitState(ctx, t, c, "pyok", driver.Healthy, driver.Failed)
	if st.State != driver.Healthy {
		t.Fatalf("score.py service: %s %s", st.State, st.Message)
	}
	code, body, err := drivertest.Score(ctx, st.ScoringURI, "", `{"data": [1, 2, 3.5]}`)
	if err != nil || code != 200 || !strings.Contains(body, `"sum": 6.5`) {
		t.Fatalf("score: %d %q %v", code, body, err)
	}
	var got struct{ Pid int }
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Pid == os.Getpid() || got.Pid == 0 {
		t.Errorf("answered by pid %d (%v); want a worker process of its own", got.Pid, err)
	}

	if err := c.ApplyService(ctx, spec("pybroken", "broken.py")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteService(context.Background(), "pybroken") })
	st = drivertest.WaitState(ctx, t, c, "pybroken", driver.Failed)
	if !strings.Contains(st.Message, "model file missing: model.pkl") {
		t.Errorf("Failed message %q lacks the init error", st.Message)
	}
}

// TestIntegrationLocalClusterFPGA: a cluster of Standard_PB6s nodes has the
// FPGA the VM size carries; an FPGA service runs there, and waits with the
// scheduler's message on a CPU cluster.
func TestIntegrationLocalClusterFPGA(t *testing.T) {
	c := start(t, "fpga", driver.ClusterShape{AgentCount: 1, VMSize: "Standard_PB6s", VCPUs: 6, MemoryGB: 112, FPGAs: 1}, testOptions(nil))
	ctx := ctxFor(t, 60*time.Second)
	s := drivertest.Spec("fpga-svc", drivertest.Echo("f"), 1)
	s.Versions[0].Replica.FPGAs = 1
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "fpga-svc", driver.Healthy, driver.Unschedulable, driver.Failed)
	if st.State != driver.Healthy {
		t.Fatalf("FPGA service on an FPGA node: %s %s", st.State, st.Message)
	}
	if code, body, err := drivertest.Score(ctx, st.ScoringURI, "", `1`); code != 200 || err != nil {
		t.Errorf("score: %d %q %v", code, body, err)
	}
	// A second FPGA replica does not fit the one FPGA.
	s.Versions[0].Scale.Replicas = 2
	s.Generation++
	if err := c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	st = drivertest.WaitState(ctx, t, c, "fpga-svc", driver.Unschedulable)
	if !strings.Contains(st.Message, "Insufficient microsoft.com/fpga_catapult") {
		t.Errorf("second FPGA replica: %q, want the scheduler's Insufficient microsoft.com/fpga_catapult", st.Message)
	}
}

// TestIntegrationLocalClusterCloseLeavesNothing: after Close no goroutine
// of the cluster (nodes, pods, probes, load balancer, front-end, informers)
// and no child process is left.
func TestIntegrationLocalClusterCloseLeavesNothing(t *testing.T) {
	ctx := ctxFor(t, 90*time.Second)
	c, err := local.Start(ctx, "leak", driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14}, testOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := drivertest.Spec("leaky", drivertest.Echo("x"), 2)
	if err := c.ApplyService(ctx, s); err != nil {
		_ = c.Close()
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, c, "leaky", driver.Healthy)
	if code, _, err := drivertest.Score(ctx, st.ScoringURI, "", `1`); code != 200 {
		t.Errorf("score: %d %v", code, err)
	}
	dir := c.ControlPlane().Dir
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still there (%v)", dir, err)
	}
	if kids := children(t); len(kids) > 0 {
		t.Errorf("child processes left after Close: %q", kids)
	}
	var stacks string
	for {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "aksml/kube/local.") && !strings.Contains(stacks, "virtual-kubelet") &&
			!strings.Contains(stacks, "aksml/kube.") && !strings.Contains(stacks, "client-go/tools/cache.") {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("goroutines of the cluster left after Close:\n%s", stacks)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// children lists the command lines of this process's children.
func children(t *testing.T) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	me := fmt.Sprint(os.Getpid())
	var out []string
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == me {
			cmd, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
			out = append(out, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

// testFrontEndPodsAreProcesses: without an injected clock the front-end's
// pods are cmd/aksml-fe's program in child processes, one per pod, each on
// its pod's loopback address; kubectl reads their log.
func testFrontEndProcesses(t *testing.T, c *local.Cluster) {
	var fe []string
	for _, cmd := range children(t) {
		if strings.Contains(cmd, "--replica-address-prefix=10.244.=127.") {
			fe = append(fe, cmd)
		}
	}
	if len(fe) != 2 {
		t.Fatalf("front-end processes %q, want the Deployment's 2", fe)
	}
	for _, cmd := range fe {
		if !strings.Contains(cmd, "--listen=127.") || !strings.Contains(cmd, ":9001") {
			t.Errorf("front-end process %q does not listen on its pod's loopback address", cmd)
		}
	}
	out, err := c.ControlPlane().Kubectl(ctxFor(t, 30*time.Second), "-n", "azureml", "logs", "deployment/azureml-fe")
	if err != nil || !strings.Contains(out, "aksml-fe: serving") {
		t.Errorf("kubectl logs of the front-end: %q %v", out, err)
	}
}

// providerHarness runs the Provider cases on local.Provider: it provisions
// local clusters (one CPU node) and attaches nothing.
type providerHarness struct{}

func (providerHarness) NewProvider(ctx context.Context, t *testing.T) driver.Provider {
	return local.NewProvider(testOptions(nil))
}

func (providerHarness) ProvisionShape() (driver.ClusterShape, bool) {
	shape := drivertest.CPUShape
	shape.AgentCount = 1
	return shape, true
}

func (providerHarness) Existing(ctx context.Context, t *testing.T) (driver.ClusterRef, bool) {
	return driver.ClusterRef{}, false
}

// TestIntegrationLocalClusterProvider runs the Provider half of the driver
// contract on local.Provider: Provision with AlreadyExists, Cluster with
// NotFound, Delete; Attach is Unimplemented.
func TestIntegrationLocalClusterProvider(t *testing.T) {
	drivertest.RunProviderTests(t, providerHarness{})
}
