package kube_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/kube/fe"
	"github.com/aksml/aksml/kube/kubetest"
	"github.com/aksml/aksml/scoring"
)

// frontEnd is a front end started by startFrontEnd: its plain-HTTP base
// URL and the address of its HTTPS listener.
type frontEnd struct{ base, tlsAddr string }

// startFrontEnd runs the front-end (fe.Serve, aksml-fe's
// program) against cp on loopback ports (HTTP and HTTPS), as the
// in-cluster azureml-fe would, and returns its addresses. Pods that serve
// (kubetest PodOutcome.Serve) listen on loopback ports; the front-end
// reaches them there. It stops in t.Cleanup.
func startFrontEnd(t *testing.T, cp *kubetest.ControlPlane, clk clock.PassiveClock) frontEnd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, readyTLS, done := make(chan string, 1), make(chan string, 1), make(chan error, 1)
	go func() {
		done <- fe.Serve(ctx, cp.Client, &fe.ServeOptions{
			Listen: "127.0.0.1:0", ListenTLS: "127.0.0.1:0", Clock: clk, Ready: ready, ReadyTLS: readyTLS,
			ReplicaURL: func(a string, port int32) string {
				if addr, ok := cp.ReplicaAddr(a); ok {
					return "http://" + addr
				}
				return "http://" + net.JoinHostPort(a, fmt.Sprint(port))
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("front-end: %v", err)
		}
	})
	select {
	case addr := <-ready:
		return frontEnd{base: "http://" + addr, tlsAddr: <-readyTLS}
	case err := <-done:
		done <- err
		t.Fatalf("front-end stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("front-end watches did not sync")
	}
	return frontEnd{}
}

// harness gives the conformance suite clusters attached to two control
// planes: three CPU nodes (drivertest.CPUShape) and one GPU node
// (drivertest.GPUShape). Each case gets its own namespace.
type harness struct {
	cpu, gpu     *kubetest.ControlPlane
	cpuFE, gpuFE frontEnd
	clk          atomic.Pointer[drivertest.OffsetClock] // the running case's
	seq          atomic.Int64
	models       *goModels
}

// caseClock is the running case's clock.
type caseClock struct{ h *harness }

func (c caseClock) Now() time.Time                  { return c.h.clk.Load().Now() }
func (c caseClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// goModels runs the suite's Go handlers in the harness's pods: the
// conformance cluster gives each handler an image name (the same one for a
// re-applied, equal handler), and the nodes serve the handler of that
// image with a scoring.Server on a loopback port, as a container of the
// image would.
type goModels struct {
	mu      sync.Mutex
	seq     int
	byImage map[string]scoring.NewHandler
	last    map[string]goImage // service/version → its current image
}

type goImage struct {
	image  string
	sample scoring.Handler
}

func (g *goModels) imageFor(service, version string, nh scoring.NewHandler) string {
	sample := nh()
	key := service + "/" + version
	g.mu.Lock()
	defer g.mu.Unlock()
	if l, ok := g.last[key]; ok && reflect.DeepEqual(l.sample, sample) {
		return l.image
	}
	g.seq++
	img := fmt.Sprintf("aksml.test/go-model:%d", g.seq)
	g.byImage[img] = nh
	g.last[key] = goImage{img, sample}
	return img
}

func (g *goModels) outcome(p *corev1.Pod) kubetest.PodOutcome {
	c := p.Spec.Containers[0]
	g.mu.Lock()
	nh := g.byImage[c.Image]
	g.mu.Unlock()
	cfg := scoring.Config{Handler: nh}
	if nh == nil {
		var ok bool
		if cfg, ok = entryScriptConfig(p, &c); !ok {
			return kubetest.PodOutcome{}
		}
	}
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--scoring_timeout_ms="); ok {
			n, _ := strconv.Atoi(v)
			cfg.ScoringTimeout = time.Duration(n) * time.Millisecond
		}
		if v, ok := strings.CutPrefix(a, "--service_name="); ok {
			cfg.ServiceName = v
		}
		if v, ok := strings.CutPrefix(a, "--max_batch_size="); ok {
			cfg.MaxBatchSize, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(a, "--max_batch_delay_ms="); ok {
			n, _ := strconv.Atoi(v)
			cfg.MaxBatchDelay = time.Duration(n) * time.Millisecond
		}
	}
	if cfg.DataCollection != nil {
		cfg.DataCollection.Service = cfg.ServiceName
	}
	var sink *scoring.JSONLinesSink
	if cfg.Telemetry != nil {
		dir := ""
		for _, e := range c.Env {
			if e.Name == "AKSML_TELEMETRY_DIR" {
				dir = e.Value
			}
		}
		path := scoring.TelemetryFile(dir, cfg.ServiceName, cfg.Telemetry.Replica)
		var err error
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			sink, err = scoring.NewJSONLinesSink(path)
		}
		if err != nil {
			return kubetest.PodOutcome{}
		}
		cfg.Telemetry.Sink = sink
	}
	return kubetest.PodOutcome{Restarts: 3, Serve: func(ctx context.Context) (http.Handler, <-chan error) {
		ready := make(chan error, 1)
		srv, err := scoring.NewServer(cfg)
		if err != nil {
			ready <- err
			return http.NotFoundHandler(), ready
		}
		if err := srv.Start(ctx); err != nil {
			ready <- err
			return srv, ready
		}
		go func() {
			select {
			case <-srv.InitDone():
				ready <- srv.Err()
			case <-ctx.Done():
			}
			<-ctx.Done()
			time.Sleep(2 * time.Second) // the node drains the pod first
			_ = srv.Close()
			if sink != nil {
				_ = sink.Close()
			}
		}()
		return srv, ready
	}}
}

// entryScriptConfig is the replica of a score.py pod, as aksml-score would
// run it from the container's environment: the entry script (its directory
// as the source directory, the suite's Python), model data collection and
// request telemetry, the pod's name as the replica's.
func entryScriptConfig(p *corev1.Pod, c *corev1.Container) (scoring.Config, bool) {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	script := env["AZUREML_ENTRY_SCRIPT"]
	if script == "" {
		return scoring.Config{}, false
	}
	cfg := scoring.Config{EntryScript: script, SourceDir: filepath.Dir(script), Interpreter: drivertest.Python()}
	if env["AML_MODEL_DC_STORAGE_ENABLED"] == "true" && env["AKSML_MODEL_DATA_DIR"] != "" {
		cfg.DataCollection = &scoring.DataCollection{Store: &scoring.LocalModelDataStore{Root: env["AKSML_MODEL_DATA_DIR"]}}
	}
	if env["AML_APP_INSIGHTS_ENABLED"] == "true" && env["AKSML_TELEMETRY_DIR"] != "" {
		cfg.Telemetry = &scoring.Telemetry{Version: env["AKSML_VERSION_NAME"], Replica: p.Name}
	}
	return cfg, true
}

// goCluster gives the suite's Go handlers their image names.
type goCluster struct {
	driver.Cluster
	models *goModels
}

func (c goCluster) ApplyService(ctx context.Context, spec *driver.ServiceSpec) error {
	cp := *spec
	cp.Versions = slices.Clone(spec.Versions)
	for i := range cp.Versions {
		r := &cp.Versions[i].Replica
		if r.Handler != nil && r.Image == "" {
			r.Image = c.models.imageFor(spec.Name, cp.Versions[i].Name, r.Handler)
		}
	}
	return c.Cluster.ApplyService(ctx, &cp)
}

func (h *harness) NewCluster(ctx context.Context, t *testing.T, shape driver.ClusterShape) driver.Cluster {
	t.Helper()
	cp, fe := h.cpu, h.cpuFE
	if shape.GPUs > 0 {
		cp, fe = h.gpu, h.gpuFE
	}
	n := h.seq.Add(1)
	// Each case has its own clock (the suite's cases run one at a time).
	clk := &drivertest.OffsetClock{}
	h.clk.Store(clk)
	p := kube.New(&kube.Options{Clock: clk, Namespace: fmt.Sprintf("case-%d", n), ScoringBaseURL: fe.base, ScoringTLSAddress: fe.tlsAddr})
	c, err := p.Attach(ctx, fmt.Sprintf("aks-%d", n), driver.ClusterRef{Kubeconfig: cp.Kubeconfig, Context: "kubetest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		drivertest.TLSOff(t, c, fe.base)
		_ = c.Detach(context.Background())
	})
	return goCluster{c, h.models}
}

// LocalStorage: the harness's pods run in this process.
func (h *harness) LocalStorage() bool { return true }

// Advance moves the driver's clock: its time-based decisions are injected.
func (h *harness) Advance(d time.Duration) bool {
	h.clk.Load().Advance(d)
	return true
}

// conformanceSkipped are the suite's cases not run against the kube
// driver, and why: none, every case runs.
var conformanceSkipped = map[string]string{}

// TestIntegrationConformance runs the driver conformance suite against the
// kube driver on a real control plane: real API server, controllers and
// scheduler; nodes that run each Go handler as its pod's container would
// (kubetest PodOutcome.Serve); the front-end (fe.FrontEnd) routing from
// watches. Every case runs but those in conformanceSkipped.
func TestIntegrationConformance(t *testing.T) {
	t.Parallel()
	h := &harness{models: &goModels{byImage: map[string]scoring.NewHandler{}, last: map[string]goImage{}}}
	h.clk.Store(&drivertest.OffsetClock{})
	h.cpu = kubetest.Start(t, &kubetest.Options{Nodes: kubetest.NodesForShape(drivertest.CPUShape), Pods: h.models.outcome})
	h.gpu = kubetest.Start(t, &kubetest.Options{Nodes: kubetest.NodesForShape(drivertest.GPUShape), Pods: h.models.outcome})
	t.Logf("control planes ready in %v and %v", h.cpu.Started, h.gpu.Started)
	h.cpuFE, h.gpuFE = startFrontEnd(t, h.cpu, caseClock{h}), startFrontEnd(t, h.gpu, caseClock{h})
	drivertest.RunConformanceTests(t, drivertest.SkipCases(h, conformanceSkipped))
}

// Images that make the harness's nodes misbehave.
const (
	imageCrash     = "example.com/crash@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	imageBadPull   = "example.com/missing@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	imageUnready   = "example.com/unready@sha256:3333333333333333333333333333333333333333333333333333333333333333"
	imageGood      = "example.com/score@sha256:4444444444444444444444444444444444444444444444444444444444444444"
	imageGoodNewer = "example.com/score@sha256:5555555555555555555555555555555555555555555555555555555555555555"
	imageSlow      = "example.com/slow@sha256:7777777777777777777777777777777777777777777777777777777777777777"
)

// slowModel answers every request after 200 ms.
func slowModel(ctx context.Context) (http.Handler, <-chan error) {
	ready := make(chan error, 1)
	ready <- nil
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":1}`))
	}), ready
}

func podOutcome(p *corev1.Pod) kubetest.PodOutcome {
	img := p.Spec.Containers[0].Image
	switch img {
	case imageCrash:
		return kubetest.PodOutcome{Behavior: kubetest.CrashLoop, Restarts: 4,
			Message:  "model file azureml-models/broken/1/model.pkl not found",
			Previous: []string{"init: loading azureml-models/broken/1/model.pkl", "FileNotFoundError: model file azureml-models/broken/1/model.pkl not found"}}
	case imageBadPull:
		return kubetest.PodOutcome{Behavior: kubetest.ImagePull}
	case imageSlow:
		return kubetest.PodOutcome{Serve: slowModel}
	case imageUnready:
		return kubetest.PodOutcome{Behavior: kubetest.NotReady, Logs: []string{"listening on :5001", "init() still running"}}
	}
	return kubetest.PodOutcome{Logs: []string{"init: model loaded", "listening on :5001"}}
}

// mixed is a cluster of two CPU nodes (Standard_D3_v2) and one GPU node
// with two GPUs (Standard_NC12s_v3, tainted nvidia.com/gpu).
type mixed struct {
	cp  *kubetest.ControlPlane
	clk *drivertest.OffsetClock
	c   *kube.Cluster
	fe  string
}

func newMixed(t *testing.T) *mixed {
	nodes := kubetest.NodesForShape(driver.ClusterShape{AgentCount: 2, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14})
	gpu := kubetest.NodesForShape(driver.ClusterShape{AgentCount: 1, VMSize: "Standard_NC12s_v3", VCPUs: 12, MemoryGB: 224, GPUs: 2})
	gpu[0].Name = "aks-gpupool-0"
	gpu[0].Labels[kubetest.LabelAgentPool] = "gpupool"
	m := &mixed{clk: &drivertest.OffsetClock{}}
	m.cp = kubetest.Start(t, &kubetest.Options{Nodes: append(nodes, gpu...), Pods: podOutcome})
	t.Logf("mixed control plane ready in %v", m.cp.Started)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m.fe = startFrontEnd(t, m.cp, nil).base
	c, err := kube.New(&kube.Options{Clock: m.clk, ScoringBaseURL: m.fe}).Attach(ctx, "mixed", driver.ClusterRef{Kubeconfig: m.cp.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	m.c = c.(*kube.Cluster)
	return m
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func spec(name, image string, replicas int) *driver.ServiceSpec {
	s := drivertest.Spec(name, nil, replicas)
	s.Versions[0].Replica.Image = image
	s.Versions[0].Replica.Digest = "sha256:" + strings.Repeat("d", 64)
	s.Versions[0].Replica.Models = []driver.ModelRef{{Name: "sklearn_regression_model.pkl", Version: 3, Digest: "sha256:" + strings.Repeat("e", 64)}, {Name: "tokenizer", Version: 1, Digest: "sha256:" + strings.Repeat("f", 64)}}
	s.Generation = 1
	return s
}

// TestIntegrationKube checks the Kubernetes side of the driver on one
// control plane with CPU and GPU nodes.
func TestIntegrationKube(t *testing.T) {
	t.Parallel()
	m := newMixed(t)
	t.Run("GPUServiceLandsOnGPUNodes", m.testGPUPlacement)
	t.Run("ObjectsOfAService", m.testObjects)
	t.Run("KeysOnlyInSecrets", m.testKeysOnlyInSecrets)
	t.Run("ReapplyCreatesNoReplicaSet", m.testReapply)
	t.Run("StatusFromPods", m.testStatusFromPods)
	t.Run("DeleteLeavesNothing", m.testDelete)
	t.Run("FrontEndRoutes", m.testFrontEnd)
	t.Run("InstallFrontEnd", m.testInstall)
	t.Run("FrontEndScalesUp", m.testAutoscale)
	t.Run("AttachErrors", m.testAttachErrors)
	t.Run("WaitRequests", m.testWaitRequests)
	t.Run("ProviderContract", m.testProviderContract)
}

func (m *mixed) podsOf(ctx context.Context, t *testing.T, ns, service string) []corev1.Pod {
	t.Helper()
	list, err := m.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelService + "=" + service})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func (m *mixed) testGPUPlacement(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	g := spec("gpu-svc", imageGood, 2)
	g.Namespace = "gpu"
	g.Versions[0].Replica.GPUs = 1
	if err := m.c.ApplyService(ctx, g); err != nil {
		t.Fatal(err)
	}
	c := spec("cpu-svc", imageGood, 3)
	c.Namespace = "gpu"
	if err := m.c.ApplyService(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.c.DeleteService(context.Background(), "gpu-svc")
		_ = m.c.DeleteService(context.Background(), "cpu-svc")
	})
	drivertest.WaitState(ctx, t, m.c, "gpu-svc", driver.Healthy)
	drivertest.WaitState(ctx, t, m.c, "cpu-svc", driver.Healthy)
	for _, p := range m.podsOf(ctx, t, "gpu", "gpu-svc") {
		if p.Spec.NodeName != "aks-gpupool-0" {
			t.Errorf("GPU pod %s on node %q, want aks-gpupool-0", p.Name, p.Spec.NodeName)
		}
	}
	for _, p := range m.podsOf(ctx, t, "gpu", "cpu-svc") {
		if p.Spec.NodeName == "aks-gpupool-0" {
			t.Errorf("CPU pod %s on the tainted GPU node", p.Name)
		}
	}
	// Two GPUs are taken: a third GPU replica waits with the scheduler's
	// own reason.
	g.Versions[0].Scale.Replicas = 3
	g.Generation = 2
	if err := m.c.ApplyService(ctx, g); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, m.c, "gpu-svc", driver.Unschedulable)
	if !strings.Contains(st.Message, "Insufficient nvidia.com/gpu") {
		t.Errorf("third GPU replica: %q, want the scheduler's Insufficient nvidia.com/gpu", st.Message)
	}
	if st.Versions[0].Ready != 2 || st.Versions[0].Desired != 3 {
		t.Errorf("versions %+v, want 2 of 3 ready", st.Versions)
	}
}

func (m *mixed) testObjects(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	s := spec("objects", imageGood, 2)
	r := &s.Versions[0].Replica
	r.CPU, r.CPULimit, r.MemoryGB, r.MemoryGBLimit, r.GPUs = 0.5, 1.5, 1, 2, 1
	r.Env = map[string]string{"B": "2", "A": "1"}
	if err := m.c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, m.c, "objects", driver.Healthy)
	d, err := m.cp.Client.AppsV1().Deployments(kube.DefaultNamespace).Get(ctx, "objects", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps := d.Spec.Template.Spec
	ctr := ps.Containers[0]
	for _, c := range []struct{ what, got, want string }{
		{"image", ctr.Image, imageGood},
		{"cpu request", ctr.Resources.Requests.Cpu().String(), "500m"},
		{"cpu limit", ctr.Resources.Limits.Cpu().String(), "1500m"},
		{"memory request", ctr.Resources.Requests.Memory().String(), "1Gi"},
		{"memory limit", ctr.Resources.Limits.Memory().String(), "2Gi"},
		{"gpu limit", fmt.Sprint(ctr.Resources.Limits.Name(kube.ResourceGPU, "").Value()), "1"},
		{"node selector", ps.NodeSelector[kube.LabelAccelerator], "nvidia"},
		{"toleration", fmt.Sprint(len(ps.Tolerations) == 1 && ps.Tolerations[0].Key == kube.ResourceGPU), "true"},
		{"liveness delay", fmt.Sprint(ctr.LivenessProbe.InitialDelaySeconds), "310"},
		{"liveness period", fmt.Sprint(ctr.LivenessProbe.PeriodSeconds), "10"},
		{"liveness failures", fmt.Sprint(ctr.LivenessProbe.FailureThreshold), "3"},
		{"readiness delay", fmt.Sprint(ctr.ReadinessProbe.InitialDelaySeconds), "0"},
		{"env", fmt.Sprint(ctr.Env[0].Name, ctr.Env[1].Name), "AB"},
		{"service label", d.Labels[kube.LabelService], "objects"},
		{"version label", d.Labels[kube.LabelVersion], "objects"},
		{"model label", d.Labels[kube.LabelModelPrefix+"sklearn_regression_model.pkl"], "3"},
		{"models annotation", fmt.Sprint(strings.Contains(d.Annotations[kube.AnnotationModels], strings.Repeat("e", 64))), "true"},
		{"owner", d.OwnerReferences[0].Kind + "/" + d.OwnerReferences[0].Name, "Secret/aksml-objects"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	svc, err := m.cp.Client.CoreV1().Services(kube.DefaultNamespace).Get(ctx, "objects", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Ports[0].TargetPort.IntValue() != kube.ScoringPort || svc.Spec.Selector[kube.LabelVersion] != "objects" {
		t.Errorf("service %+v", svc.Spec)
	}
	logs, err := m.c.ServiceLogs(ctx, "objects", 10, false)
	if err != nil || len(logs) != 4 || !strings.HasSuffix(logs[0], ": init: model loaded") {
		t.Errorf("logs %q %v, want two lines from each of two pods", logs, err)
	}
	if logs, err := m.c.ServiceLogs(ctx, "objects", 3, false); err != nil || len(logs) != 3 {
		t.Errorf("tail 3: %q %v", logs, err)
	}
	// An endpoint: one Deployment and Service per version.
	e := spec("ep", imageGood, 1)
	e.IsEndpoint = true
	v2 := e.Versions[0]
	v2.Name, v2.IsDefault, v2.TrafficPercent = "v2", false, 20
	e.Versions[0].Name = "v1"
	e.Versions = append(e.Versions, v2)
	if err := m.c.ApplyService(ctx, e); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, m.c, "ep", driver.Healthy)
	if len(st.Versions) != 2 || st.Versions[1].Name != "v2" || !strings.HasSuffix(st.Versions[1].ScoringURI, "/api/v1/service/ep/versions/v2/score") {
		t.Errorf("endpoint versions %+v", st.Versions)
	}
	for _, n := range []string{"ep-v1", "ep-v2"} {
		d, err := m.cp.Client.AppsV1().Deployments(kube.DefaultNamespace).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n == "ep-v2" && d.Annotations[kube.AnnotationTraffic] != "20" {
			t.Errorf("%s traffic annotation %q", n, d.Annotations[kube.AnnotationTraffic])
		}
	}
	// Dropping a version deletes its objects.
	e.Versions = e.Versions[:1]
	e.Versions[0].TrafficPercent = 100
	if err := m.c.ApplyService(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := m.cp.Client.AppsV1().Deployments(kube.DefaultNamespace).Get(ctx, "ep-v2", metav1.GetOptions{}); err == nil {
		t.Errorf("deployment ep-v2 survived the removal of version v2")
	}
}

func (m *mixed) testKeysOnlyInSecrets(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	const primary, secondary = "primary-key-q9Xc2vLr7TnB4mKs", "secondary-key-Hd8wPz3Fy6JuAe"
	s := spec("keyed", imageGood, 1)
	s.Namespace = "keys"
	s.Auth = driver.Auth{Mode: driver.AuthKey, PrimaryKey: primary, SecondaryKey: secondary}
	if err := m.c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, m.c, "keyed", driver.Healthy)
	cs := m.cp.Client
	sec, err := cs.CoreV1().Secrets("keys").Get(ctx, "aksml-keyed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data[kube.SecretPrimaryKey]) != primary || string(sec.Data[kube.SecretSecondaryKey]) != secondary {
		t.Errorf("secret data %v lacks the keys", sec.Data)
	}
	// Everything else of the namespace, serialised, must not contain a key.
	var dump strings.Builder
	add := func(v any, err error) {
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&dump, "%+v\n", v)
	}
	add(cs.CoreV1().ConfigMaps("keys").List(ctx, metav1.ListOptions{}))
	add(cs.AppsV1().Deployments("keys").List(ctx, metav1.ListOptions{}))
	add(cs.AppsV1().ReplicaSets("keys").List(ctx, metav1.ListOptions{}))
	add(cs.CoreV1().Pods("keys").List(ctx, metav1.ListOptions{}))
	add(cs.CoreV1().Services("keys").List(ctx, metav1.ListOptions{}))
	add(cs.CoreV1().Events("keys").List(ctx, metav1.ListOptions{}))
	sec.Data, sec.StringData = nil, nil
	sec.ManagedFields = nil
	add(sec, nil)
	add(m.c.ServiceLogs(ctx, "keyed", 0, false))
	add(m.c.ServiceStatus(ctx, "keyed"))
	for _, k := range []string{primary, secondary} {
		if strings.Contains(dump.String(), k) {
			t.Errorf("key %q appears outside the Secret's data", k)
		}
	}
}

func (m *mixed) testReapply(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	s := spec("steady", imageGood, 2)
	s.Namespace = "reapply"
	if err := m.c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, m.c, "steady", driver.Healthy)
	rsNames := func() []string {
		list, err := m.cp.Client.AppsV1().ReplicaSets("reapply").List(ctx, metav1.ListOptions{LabelSelector: kube.LabelService + "=steady"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rs := range list.Items {
			out = append(out, rs.Name)
		}
		return out
	}
	getDep := func() (string, int64) {
		d, err := m.cp.Client.AppsV1().Deployments("reapply").Get(ctx, "steady", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.ResourceVersion, d.Generation
	}
	before := rsNames()
	rv, gen := getDep()
	for range 3 {
		if err := m.c.ApplyService(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if after := rsNames(); fmt.Sprint(after) != fmt.Sprint(before) || len(after) != 1 {
		t.Errorf("re-applying an unchanged spec: replica sets %v → %v", before, after)
	}
	if rv2, gen2 := getDep(); rv2 != rv || gen2 != gen {
		t.Errorf("re-applying an unchanged spec wrote the Deployment: resourceVersion %s → %s, generation %d → %d", rv, rv2, gen, gen2)
	}
	// A changed image is a new ReplicaSet, rolled out.
	s.Versions[0].Replica.Image = imageGoodNewer
	s.Generation = 2
	if err := m.c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitFor(ctx, t, m.c, "steady", func(st *driver.ServiceStatus) bool {
		return st.State == driver.Healthy && len(rsNames()) == 2
	})
	if st.Generation != 2 {
		t.Errorf("generation %d, want 2", st.Generation)
	}
}

func (m *mixed) testStatusFromPods(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	ns := "status"
	for _, tc := range []struct{ name, image string }{{"crashing", imageCrash}, {"pulling", imageBadPull}, {"unready", imageUnready}} {
		s := spec(tc.name, tc.image, 1)
		s.Namespace = ns
		if err := m.c.ApplyService(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	st := drivertest.WaitState(ctx, t, m.c, "crashing", driver.Failed)
	if !strings.Contains(st.Message, "CrashLoopBackOff") || !strings.Contains(st.Message, "model.pkl not found") {
		t.Errorf("crash message %q", st.Message)
	}
	if st.Versions[0].Restarts != 4 || st.Versions[0].Ready != 0 {
		t.Errorf("crash versions %+v", st.Versions)
	}
	logs, err := m.c.ServiceLogs(ctx, "crashing", 1, true)
	if err != nil || len(logs) != 1 || !strings.Contains(logs[0], "FileNotFoundError") {
		t.Errorf("init logs of a crashing service: %q %v", logs, err)
	}
	// Pulling and not-ready pods are in progress until the thresholds pass.
	for _, n := range []string{"pulling", "unready"} {
		st := drivertest.WaitFor(ctx, t, m.c, n, func(st *driver.ServiceStatus) bool { return st.Versions[0].Replicas == 1 })
		if st.State != driver.Transitioning {
			t.Errorf("%s before its threshold: %s %q, want Transitioning", n, st.State, st.Message)
		}
	}
	m.clk.Advance(kube.DefaultImagePullGrace)
	st = drivertest.WaitState(ctx, t, m.c, "pulling", driver.Failed)
	if !strings.Contains(st.Message, "ImagePullBackOff") || !strings.Contains(st.Message, "example.com/missing") {
		t.Errorf("image pull message %q", st.Message)
	}
	st = drivertest.WaitState(ctx, t, m.c, "unready", driver.Unhealthy)
	if !strings.Contains(st.Message, "not ready") {
		t.Errorf("unready message %q", st.Message)
	}
	if logs, err := m.c.ServiceLogs(ctx, "unready", 0, false); err != nil || len(logs) != 2 {
		t.Errorf("logs of a running, unready service: %q %v", logs, err)
	}
}

func (m *mixed) testDelete(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	e := spec("doomed", imageGood, 2)
	e.Namespace = "delete"
	e.IsEndpoint = true
	v2 := e.Versions[0]
	v2.Name, v2.IsDefault = "canary", false
	e.Versions = append(e.Versions, v2)
	if err := m.c.ApplyService(ctx, e); err != nil {
		t.Fatal(err)
	}
	keep := spec("bystander", imageGood, 1)
	keep.Namespace = "delete"
	if err := m.c.ApplyService(ctx, keep); err != nil {
		t.Fatal(err)
	}
	drivertest.WaitState(ctx, t, m.c, "doomed", driver.Healthy)
	drivertest.WaitState(ctx, t, m.c, "bystander", driver.Healthy)
	cs := m.cp.Client
	sel := metav1.ListOptions{LabelSelector: kube.LabelService + "=doomed"}
	left := func() []string {
		var out []string
		add := func(kind string, n int, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				out = append(out, fmt.Sprintf("%d %s", n, kind))
			}
		}
		s, err := cs.CoreV1().Secrets("delete").List(ctx, sel)
		add("secrets", len(s.Items), err)
		d, err := cs.AppsV1().Deployments("delete").List(ctx, sel)
		add("deployments", len(d.Items), err)
		r, err := cs.AppsV1().ReplicaSets("delete").List(ctx, sel)
		add("replicasets", len(r.Items), err)
		p, err := cs.CoreV1().Pods("delete").List(ctx, sel)
		add("pods", len(p.Items), err)
		v, err := cs.CoreV1().Services("delete").List(ctx, sel)
		add("services", len(v.Items), err)
		es, err := cs.DiscoveryV1().EndpointSlices("delete").List(ctx, sel)
		add("endpointslices", len(es.Items), err)
		return out
	}
	if got := left(); len(got) < 5 {
		t.Fatalf("before delete, only %v carry the service label", got)
	}
	if err := m.c.DeleteService(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.c.ServiceStatus(ctx, "doomed"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("status after delete: %v, want NotFound", err)
	}
	for deadline, got := time.Now().Add(20*time.Second), left(); len(got) > 0; got = left() {
		if time.Now().After(deadline) {
			t.Fatalf("20 s after delete, still there: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, err := m.c.ServiceStatus(ctx, "bystander"); err != nil || st.State != driver.Healthy {
		t.Errorf("the other service after delete: %+v %v", st, err)
	}
	if err := m.c.DeleteService(ctx, "doomed"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("second delete: %v, want NotFound", err)
	}
}

func (m *mixed) testAttachErrors(t *testing.T) {
	ctx := ctxFor(t, 20*time.Second)
	p := kube.New(nil)
	for _, tc := range []struct {
		name string
		ref  driver.ClusterRef
		want error
	}{
		{"missing kubeconfig", driver.ClusterRef{Kubeconfig: "/nonexistent/kubeconfig"}, errcode.InvalidArgument},
		{"unknown context", driver.ClusterRef{Kubeconfig: m.cp.Kubeconfig, Context: "nope"}, errcode.InvalidArgument},
		{"resource id only", driver.ClusterRef{ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"}, errcode.Unimplemented},
	} {
		if _, err := p.Attach(ctx, "x", tc.ref); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := p.Attach(ctx, "first", driver.ClusterRef{Kubeconfig: m.cp.Kubeconfig}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Attach(ctx, "second", driver.ClusterRef{Kubeconfig: m.cp.Kubeconfig, Context: "kubetest"}); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("the same cluster attached twice: %v, want AlreadyExists", err)
	}
	if _, err := p.Provision(ctx, "new", drivertest.CPUShape); !errors.Is(err, errcode.Unimplemented) {
		t.Errorf("Provision: %v, want Unimplemented", err)
	}
	c, err := p.Cluster(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.State != driver.StateSucceeded || st.Shape.AgentCount != 3 {
		t.Errorf("status %+v %v, want Succeeded with 3 nodes", st, err)
	}
	if err := c.Delete(ctx); !errors.Is(err, errcode.Unimplemented) {
		t.Errorf("Delete of an attached cluster: %v, want Unimplemented", err)
	}
	if err := c.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Cluster(ctx, "first"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("cluster after detach: %v, want NotFound", err)
	}
}

// scoreUntil scores uri until the answer has status want or ctx ends: the
// front-end follows the cluster through watches, a moment behind.
func scoreUntil(ctx context.Context, t *testing.T, uri, bearer string, want int) string {
	t.Helper()
	var code int
	var body string
	var err error
	for {
		code, body, err = drivertest.Score(ctx, uri, bearer, `{"x":1}`)
		if err == nil && code == want {
			return body
		}
		select {
		case <-ctx.Done():
			t.Fatalf("POST %s: %d %q %v, want %d", uri, code, body, err, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// testFrontEnd checks the routing table the front-end builds from the
// cluster: auth from the Secret, 503 for a service without ready
// replicas, 404 once a service is deleted.
func (m *mixed) testFrontEnd(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	s := spec("routed", imageUnready, 1)
	s.Namespace = "fe"
	s.Auth = driver.Auth{Mode: driver.AuthKey, PrimaryKey: "routed-primary-key-abcdefgh", SecondaryKey: "routed-secondary-key-ijklmn"}
	if err := m.c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitFor(ctx, t, m.c, "routed", func(st *driver.ServiceStatus) bool { return st.Versions[0].Replicas == 1 })
	if !strings.HasPrefix(st.ScoringURI, m.fe+"/api/v1/service/routed/score") {
		t.Errorf("scoring URI %q is not on the front-end %s", st.ScoringURI, m.fe)
	}
	scoreUntil(ctx, t, st.ScoringURI, "", http.StatusUnauthorized)
	scoreUntil(ctx, t, st.ScoringURI, "wrong", http.StatusUnauthorized)
	if body := scoreUntil(ctx, t, st.ScoringURI, s.Auth.SecondaryKey, http.StatusServiceUnavailable); !strings.Contains(body, "routed") {
		t.Errorf("503 body %q does not name the service", body)
	}
	// Token auth: the driver's tokens verify at the front-end.
	tok := spec("tokened", imageUnready, 1)
	tok.Namespace = "fe"
	tok.Auth = driver.Auth{Mode: driver.AuthToken}
	if err := m.c.ApplyService(ctx, tok); err != nil {
		t.Fatal(err)
	}
	tk, err := m.c.IssueToken(ctx, "tokened")
	if err != nil {
		t.Fatal(err)
	}
	tst, err := m.c.ServiceStatus(ctx, "tokened")
	if err != nil {
		t.Fatal(err)
	}
	scoreUntil(ctx, t, tst.ScoringURI, tk.AccessToken, http.StatusServiceUnavailable)
	scoreUntil(ctx, t, tst.ScoringURI, "", http.StatusUnauthorized)
	if _, err := m.c.IssueToken(ctx, "routed"); !errors.Is(err, errcode.FailedPrecondition) {
		t.Errorf("IssueToken for a key-auth service: %v, want FailedPrecondition", err)
	}
	if err := m.c.DeleteService(ctx, "routed"); err != nil {
		t.Fatal(err)
	}
	scoreUntil(ctx, t, st.ScoringURI, s.Auth.PrimaryKey, http.StatusNotFound)
}

// testInstall attaches with Options.InstallFrontEnd: the azureml-fe
// objects appear, the front-end Service's address becomes the scoring
// base, and Detach removes them.
func (m *mixed) testInstall(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	const image = "example.com/aksml-fe@sha256:6666666666666666666666666666666666666666666666666666666666666666"
	p := kube.New(&kube.Options{InstallFrontEnd: true, FrontEndImage: image, FrontEndNamespace: "fe-system"})
	c, err := p.Attach(ctx, "with-fe", driver.ClusterRef{Kubeconfig: m.cp.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	cs := m.cp.Client
	svc, err := cs.CoreV1().Services("fe-system").Get(ctx, kube.FrontEndName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.ScoringBaseURL != "http://"+svc.Spec.ClusterIP+":80" {
		t.Errorf("scoring base %q %v, want the front-end service's cluster IP %s", st.ScoringBaseURL, err, svc.Spec.ClusterIP)
	}
	role, err := cs.RbacV1().ClusterRoles().Get(ctx, kube.FrontEndRole, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What the front-end watches (a deleted pod leaves the route before its
	// EndpointSlice says so) and the scale it writes.
	var granted []string
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			granted = append(granted, res+":"+strings.Join(r.Verbs, ","))
		}
	}
	slices.Sort(granted)
	if want := []string{"deployments/scale:get,update,patch", "deployments:get,list,watch", "endpointslices:get,list,watch", "pods:get,list,watch", "secrets:get,list,watch"}; !slices.Equal(granted, want) {
		t.Errorf("cluster role grants %v, want %v", granted, want)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		d, err := cs.AppsV1().Deployments("fe-system").Get(ctx, kube.FrontEndName, metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == 2 && d.Spec.Template.Spec.Containers[0].Image == image {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("front-end deployment never available: %+v %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := cs.CoreV1().Secrets("fe-system").Get(ctx, kube.TokenSecret, metav1.GetOptions{}); err != nil {
		t.Errorf("token key: %v", err)
	}
	// HTTPS: the Service's port 443 to the pods' 9443, where aksml-fe
	// serves the certificate of the Secret azuremlfessl that SetTLS
	// writes.
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s:%d->%s", p.Name, p.Port, p.TargetPort.String()))
	}
	if want := []string{"http:80->9001", "https:443->9443"}; !slices.Equal(ports, want) {
		t.Errorf("front-end service ports %v, want %v", ports, want)
	}
	d, err := cs.AppsV1().Deployments("fe-system").Get(ctx, kube.FrontEndName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(ctr.Args, "--listen-tls=0.0.0.0:9443") || !slices.Contains(ctr.Args, "--https-port=443") || len(ctr.Ports) != 2 || ctr.Ports[1].ContainerPort != kube.FrontEndTLSPort {
		t.Errorf("front-end container: args %v ports %v, want HTTPS on %d redirected to port 443", ctr.Args, ctr.Ports, kube.FrontEndTLSPort)
	}
	if _, err := fe.ParseArgs(ctr.Args, io.Discard); err != nil {
		t.Errorf("aksml-fe refuses the arguments the install gives it: %v", err)
	}
	ca, err := pki.NewCA("install test CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue([]string{"fe.install.test"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetTLS(ctx, &driver.TLS{CName: "fe.install.test", CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	sec, err := cs.CoreV1().Secrets("fe-system").Get(ctx, kube.FrontEndTLSSecret, metav1.GetOptions{})
	if err != nil || sec.Type != corev1.SecretTypeTLS {
		t.Fatalf("front-end TLS secret: %v %v", sec, err)
	}
	if err := c.SetTLS(ctx, &driver.TLS{CName: "fe.install.test", CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM, CABundle: ca.CertPEM()}); err != nil {
		t.Fatalf("SetTLS again (an update): %v", err)
	}
	if err := c.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("fe-system").Get(ctx, kube.FrontEndTLSSecret, metav1.GetOptions{}); err == nil {
		t.Errorf("front-end TLS secret left after detach")
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, kube.FrontEndRoleBinding, metav1.GetOptions{}); err == nil {
		t.Errorf("cluster role binding left after detach")
	}
	if _, err := cs.AppsV1().Deployments("fe-system").Get(ctx, kube.FrontEndName, metav1.GetOptions{}); err == nil {
		t.Errorf("front-end deployment left after detach")
	}
}

// testAutoscale loads an autoscaled service through the front-end until
// its autoscaler writes the Deployment's scale, and checks that
// re-applying the spec keeps the count it chose.
func (m *mixed) testAutoscale(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	s := spec("elastic", imageSlow, 0)
	s.Namespace = "scale"
	s.Versions[0].Scale = driver.Scale{Autoscale: true, Min: 1, Max: 3, TargetUtilization: 70, RefreshPeriod: 100 * time.Millisecond}
	s.Versions[0].Replica.MaxQueueWait = 5 * time.Second
	if err := m.c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitState(ctx, t, m.c, "elastic", driver.Healthy)
	if st.Versions[0].Desired != 1 {
		t.Fatalf("autoscaled service starts with %d replicas, want min 1", st.Versions[0].Desired)
	}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	uri := st.ScoringURI
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				_, _, _ = drivertest.Score(lctx, uri, "", `{}`)
			}
		}()
	}
	st = drivertest.WaitFor(ctx, t, m.c, "elastic", func(st *driver.ServiceStatus) bool {
		return st.Versions[0].Desired == 3 && st.Versions[0].Ready == 3
	})
	stop()
	wg.Wait()
	if err := m.c.ApplyService(ctx, s); err != nil {
		t.Fatal(err)
	}
	d, err := m.cp.Client.AppsV1().Deployments("scale").Get(ctx, "elastic", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 3 {
		t.Errorf("after re-apply: %v replicas (%v), want the autoscaler's 3", d.Spec.Replicas, err)
	}
}
