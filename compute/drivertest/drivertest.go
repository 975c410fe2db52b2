// Package drivertest is the conformance suite every aksml backend passes.
//
// A backend's test calls RunConformanceTests with a Harness that provisions
// clusters of that backend:
//
//	func TestConformance(t *testing.T) {
//		drivertest.RunConformanceTests(t, myHarness{})
//	}
//
// The suite deploys Go-handler services (so it needs no container runtime),
// and one score.py service (DataCollectionAndTelemetry, which needs Python
// and a Harness with LocalStorage), scores them through the cluster's front-end over HTTP,
// and checks the states, status codes, auth and rollout behaviour the
// driver contract promises. New behaviour is added here first.
package drivertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
)

// Harness gives the suite clusters of one backend.
type Harness interface {
	// NewCluster provisions a cluster of the given shape, ready to deploy
	// to, and arranges (t.Cleanup) for it to be deleted.
	NewCluster(ctx context.Context, t *testing.T, shape driver.ClusterShape) driver.Cluster
	// Advance moves the backend's clock forward by d, for backends whose
	// time is injected. Backends on real time return false, and the suite
	// skips the cases that would need minutes of waiting.
	Advance(d time.Duration) bool
}

// CPUShape is a small CPU-only cluster (3 × Standard_D3_v2).
var CPUShape = driver.ClusterShape{AgentCount: 3, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14, Purpose: "FastProd"}

// GPUShape is a GPU cluster (1 × Standard_NC6s_v3, one V100).
var GPUShape = driver.ClusterShape{AgentCount: 1, VMSize: "Standard_NC6s_v3", VCPUs: 6, MemoryGB: 112, GPUs: 1, GPUModel: "V100", Purpose: "DevTest"}

// RunConformanceTests runs the whole suite against h.
func RunConformanceTests(t *testing.T, h Harness) {
	t.Run("DeployHealthyAndScore", func(t *testing.T) { testDeployHealthy(t, h) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, h) })
	t.Run("ReapplyUnchanged", func(t *testing.T) { testReapplyUnchanged(t, h) })
	t.Run("InitFailureIsFailedWithLogs", func(t *testing.T) { testInitFailure(t, h) })
	t.Run("GPUOnCPUClusterIsUnschedulable", func(t *testing.T) { testUnschedulable(t, h) })
	t.Run("GPUServiceOnGPUCluster", func(t *testing.T) { testGPUFits(t, h) })
	t.Run("KeyAuth", func(t *testing.T) { testKeyAuth(t, h) })
	t.Run("TokenAuth", func(t *testing.T) { testTokenAuth(t, h) })
	t.Run("RollingUpdateUnderLoad", func(t *testing.T) { testRollingUpdate(t, h) })
	t.Run("ScaleFixedReplicas", func(t *testing.T) { testScale(t, h) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, h) })
	t.Run("StatusCodes", func(t *testing.T) { testStatusCodes(t, h) })
	t.Run("States", func(t *testing.T) { testStates(t, h) })
	t.Run("DataCollectionAndTelemetry", func(t *testing.T) { testCapture(t, h) })
	RunTLSTests(t, h)
	RunEndpointTests(t, h)
}

// EchoHandler is a Go model that answers {"echo": <input>, "tag": Tag}.
type EchoHandler struct {
	Tag      string
	InitErr  error
	modelDir string
}

// Init records the model directory or fails with InitErr.
func (e *EchoHandler) Init(ctx context.Context, modelDir string) error {
	e.modelDir = modelDir
	return e.InitErr
}

// Run echoes the input.
func (e *EchoHandler) Run(ctx context.Context, input []byte) ([]byte, error) {
	if !json.Valid(input) {
		input, _ = json.Marshal(string(input))
	}
	return json.Marshal(map[string]any{"echo": json.RawMessage(input), "tag": e.Tag})
}

// Echo returns a NewHandler for an EchoHandler with the given tag.
func Echo(tag string) scoring.NewHandler {
	return func() scoring.Handler { return &EchoHandler{Tag: tag} }
}

// Spec returns a one-version service spec running h with small requests,
// fixed replicas and no auth.
func Spec(name string, h scoring.NewHandler, replicas int) *driver.ServiceSpec {
	return &driver.ServiceSpec{
		Name: name,
		Auth: driver.Auth{Mode: driver.AuthNone},
		Versions: []driver.VersionSpec{{
			Name:      name,
			IsDefault: true,
			Replica: driver.ReplicaTemplate{
				Handler: h, CPU: 0.1, MemoryGB: 0.5,
				Probe:                   driver.Probe{Period: 10 * time.Second, InitialDelay: 310 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3},
				ScoringTimeout:          60 * time.Second,
				MaxConcurrentPerReplica: 1,
				MaxQueueWait:            500 * time.Millisecond,
				Workers:                 1,
			},
			Scale: driver.Scale{Replicas: replicas},
		}},
	}
}

// WaitState polls the service until its state is one of want or ctx ends.
func WaitState(ctx context.Context, t testing.TB, c driver.Cluster, name string, want ...driver.State) *driver.ServiceStatus {
	t.Helper()
	return WaitFor(ctx, t, c, name, func(st *driver.ServiceStatus) bool { return slices.Contains(want, st.State) })
}

// WaitFor polls the service until ok returns true or ctx ends.
func WaitFor(ctx context.Context, t testing.TB, c driver.Cluster, name string, ok func(*driver.ServiceStatus) bool) *driver.ServiceStatus {
	t.Helper()
	var last *driver.ServiceStatus
	for {
		st, err := c.ServiceStatus(ctx, name)
		if err == nil {
			last = st
			if ok(st) {
				return st
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("service %s: condition not reached: last status %+v (err %v)", name, last, err)
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Score posts body to uri with an optional bearer credential and returns
// the status and body.
func Score(ctx context.Context, uri, bearer, body string) (int, string, error) {
	return ScoreWith(ctx, http.DefaultClient, uri, bearer, body)
}

// ScoreWith is Score with the client hc. An https URI must be answered
// over TLS.
func ScoreWith(ctx context.Context, hc *http.Client, uri, bearer, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.TLS == nil && strings.HasPrefix(uri, "https://") {
		return 0, "", fmt.Errorf("%s answered without TLS", uri)
	}
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func deploy(ctx context.Context, t *testing.T, c driver.Cluster, spec *driver.ServiceSpec) *driver.ServiceStatus {
	t.Helper()
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatalf("ApplyService(%s): %v", spec.Name, err)
	}
	st := WaitState(ctx, t, c, spec.Name, driver.Healthy, driver.Failed, driver.Unschedulable)
	if st.State != driver.Healthy {
		t.Fatalf("service %s: state %s, want Healthy: %s", spec.Name, st.State, st.Message)
	}
	return st
}

func testDeployHealthy(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	st := deploy(ctx, t, c, Spec("echo-svc", Echo("v1"), 2))
	if !strings.HasSuffix(st.ScoringURI, "/api/v1/service/echo-svc/score") {
		t.Errorf("scoring URI %q does not end in /api/v1/service/echo-svc/score", st.ScoringURI)
	}
	if st.SwaggerURI != strings.TrimSuffix(st.ScoringURI, "score")+"swagger.json" {
		t.Errorf("swagger URI %q is not the scoring URI's sibling", st.SwaggerURI)
	}
	if len(st.Versions) != 1 || st.Versions[0].Ready != 2 {
		t.Errorf("versions %+v, want one with 2 ready replicas", st.Versions)
	}
	code, body, err := Score(ctx, st.ScoringURI, "", `{"data":[[1,2]]}`)
	if err != nil || code != 200 {
		t.Fatalf("score: %d %q %v", code, body, err)
	}
	var got struct {
		Echo map[string]any `json:"echo"`
		Tag  string         `json:"tag"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Tag != "v1" || got.Echo["data"] == nil {
		t.Fatalf("score body %q (%v), want the echo of the input from v1", body, err)
	}
	resp, err := http.Get(st.SwaggerURI)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET swagger: %d", resp.StatusCode)
	}
}

func testNotFound(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	if _, err := c.ServiceStatus(ctx, "nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("ServiceStatus(missing) = %v, want NotFound", err)
	}
	if err := c.DeleteService(ctx, "nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("DeleteService(missing) = %v, want NotFound", err)
	}
	if _, err := c.ServiceLogs(ctx, "nope", 10, false); !errors.Is(err, errcode.NotFound) {
		t.Errorf("ServiceLogs(missing) = %v, want NotFound", err)
	}
}

func testReapplyUnchanged(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	spec := Spec("steady", Echo("v1"), 1)
	deploy(ctx, t, c, spec)
	before, err := c.ServiceStatus(ctx, "steady")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	after, err := c.ServiceStatus(ctx, "steady")
	if err != nil {
		t.Fatal(err)
	}
	if after.State != driver.Healthy || after.Versions[0].Ready != before.Versions[0].Ready || after.Versions[0].Restarts != before.Versions[0].Restarts {
		t.Errorf("re-applying an unchanged spec changed the service: before %+v after %+v", before, after)
	}
}

func testInitFailure(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	bad := func() scoring.Handler {
		return &EchoHandler{InitErr: errors.New("model file azureml-models/broken/1/model.pkl not found")}
	}
	if err := c.ApplyService(ctx, Spec("crashy", bad, 1)); err != nil {
		t.Fatal(err)
	}
	// A replica that fails init twice is in CrashLoopBackOff: the first
	// restart is immediate, so no clock needs to move.
	st := WaitState(ctx, t, c, "crashy", driver.Failed, driver.Healthy)
	if st.State != driver.Failed {
		t.Fatalf("state %s, want Failed", st.State)
	}
	if !strings.Contains(st.Message, "CrashLoopBackOff") || !strings.Contains(st.Message, "model.pkl not found") {
		t.Errorf("failure message %q lacks CrashLoopBackOff and the init error", st.Message)
	}
	code, body, err := Score(ctx, st.ScoringURI, "", `{}`)
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("scoring a service with no ready replica: %d %q %v, want 503", code, body, err)
	}
}

func testUnschedulable(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	spec := Spec("gpu-svc", Echo("gpu"), 1)
	spec.Versions[0].Replica.GPUs = 1
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := WaitState(ctx, t, c, "gpu-svc", driver.Unschedulable, driver.Healthy, driver.Failed)
	if st.State != driver.Unschedulable {
		t.Fatalf("GPU service on a CPU cluster: state %s, want Unschedulable", st.State)
	}
	if !strings.Contains(st.Message, "Insufficient nvidia.com/gpu") || !strings.Contains(st.Message, "nodes are available") {
		t.Errorf("message %q is not the scheduler's", st.Message)
	}
	if h.Advance(5*time.Minute + time.Second) {
		st = WaitState(ctx, t, c, "gpu-svc", driver.Failed)
		if !strings.Contains(st.Message, "Couldn't Schedule") {
			t.Errorf("after 5 min: %q", st.Message)
		}
	}
}

func testGPUFits(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, GPUShape)
	spec := Spec("gpu-ok", Echo("gpu"), 1)
	spec.Versions[0].Replica.GPUs = 1
	deploy(ctx, t, c, spec)
	// A second GPU replica cannot share the only GPU.
	spec2 := Spec("gpu-two", Echo("gpu"), 1)
	spec2.Versions[0].Replica.GPUs = 1
	if err := c.ApplyService(ctx, spec2); err != nil {
		t.Fatal(err)
	}
	st := WaitState(ctx, t, c, "gpu-two", driver.Unschedulable, driver.Healthy)
	if st.State != driver.Unschedulable {
		t.Errorf("second GPU service on a one-GPU cluster: %s, want Unschedulable", st.State)
	}
}

func testKeyAuth(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	spec := Spec("keyed", Echo("k"), 1)
	spec.Auth = driver.Auth{Mode: driver.AuthKey, PrimaryKey: "primary-key-aaaaaaaaaaaaaaaa", SecondaryKey: "secondary-key-bbbbbbbbbbbbbb"}
	st := deploy(ctx, t, c, spec)
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"no key", "", 401},
		{"wrong key", "nope", 401},
		{"primary", spec.Auth.PrimaryKey, 200},
		{"secondary", spec.Auth.SecondaryKey, 200},
	} {
		code, body, err := Score(ctx, st.ScoringURI, tc.key, `{"x":1}`)
		if err != nil || code != tc.want {
			t.Errorf("%s: %d %q %v, want %d", tc.name, code, body, err, tc.want)
		}
	}
	// Rotating the primary key: the old value stops working at once.
	old := spec.Auth.PrimaryKey
	spec.Auth.PrimaryKey = "primary-key-cccccccccccccccc"
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	WaitState(ctx, t, c, "keyed", driver.Healthy)
	if code, _, _ := Score(ctx, st.ScoringURI, old, `{}`); code != 401 {
		t.Errorf("old primary key after rotation: %d, want 401", code)
	}
	if code, _, _ := Score(ctx, st.ScoringURI, spec.Auth.PrimaryKey, `{}`); code != 200 {
		t.Errorf("new primary key: %d, want 200", code)
	}
}

func testTokenAuth(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	spec := Spec("tokened", Echo("t"), 1)
	spec.Auth = driver.Auth{Mode: driver.AuthToken}
	st := deploy(ctx, t, c, spec)
	other := Spec("other", Echo("o"), 1)
	other.Auth = driver.Auth{Mode: driver.AuthToken}
	deploy(ctx, t, c, other)
	tok, err := c.IssueToken(ctx, "tokened")
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || !tok.RefreshAfter.Before(tok.ExpiresOn) {
		t.Errorf("token %+v: want Bearer with refresh before expiry", tok)
	}
	otherTok, err := c.IssueToken(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	tampered := tok.AccessToken[:len(tok.AccessToken)-2] + flip(tok.AccessToken[len(tok.AccessToken)-2:])
	for _, tc := range []struct {
		name, tok string
		want      int
	}{
		{"no token", "", 401},
		{"valid", tok.AccessToken, 200},
		{"tampered", tampered, 401},
		{"other service's", otherTok.AccessToken, 401},
	} {
		code, body, err := Score(ctx, st.ScoringURI, tc.tok, `{}`)
		if err != nil || code != tc.want {
			t.Errorf("%s: %d %q %v, want %d", tc.name, code, body, err, tc.want)
		}
	}
	if h.Advance(tok.ExpiresOn.Sub(time.Now()) + time.Hour) {
		if code, _, _ := Score(ctx, st.ScoringURI, tok.AccessToken, `{}`); code != 401 {
			t.Errorf("expired token: %d, want 401", code)
		}
	}
	if _, err := c.IssueToken(ctx, "nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("IssueToken(missing) = %v, want NotFound", err)
	}
}

func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

func testRollingUpdate(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	// Two callers on two single-slot replicas: a request never needs to
	// queue behind another caller, so any non-2xx is the rollout's fault.
	// The long queue wait absorbs scheduling hiccups of a busy machine.
	spec := Spec("rolling", Echo("v1"), 2)
	spec.Versions[0].Replica.MaxQueueWait = 10 * time.Second
	st := deploy(ctx, t, c, spec)

	l := StartLoad(ctx, t, epClient(t), st.ScoringURI, 2)
	l.Wait(ctx, t, 20) // the update starts under load
	spec2 := Spec("rolling", Echo("v2"), 2)
	spec2.Versions[0].Replica.MaxQueueWait = 10 * time.Second
	if err := c.ApplyService(ctx, spec2); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for tag, n := range l.Take() {
			seen[tag] += n
		}
		st, err := c.ServiceStatus(ctx, "rolling")
		if err == nil && st.State == driver.Healthy && seen["v2"] > 0 {
			code, body, _ := Score(ctx, st.ScoringURI, "", `{}`)
			if code == 200 && strings.Contains(body, `"v2"`) && !strings.Contains(body, `"v1"`) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Stop()
	for tag, n := range l.Take() {
		seen[tag] += n
	}
	if l.Failed() != 0 {
		t.Errorf("rolling update: %d of %d requests failed; first: %v", l.Failed(), l.Total(), l.Failures()[0])
	}
	if seen["v1"] == 0 || seen["v2"] == 0 {
		t.Errorf("answers during the update %v: want v1 before, v2 after", seen)
	}
	// Only the new version's replicas remain.
	for i := 0; i < 50; i++ {
		code, body, _ := Score(ctx, st.ScoringURI, "", `{}`)
		if code != 200 || !strings.Contains(body, `"v2"`) {
			t.Fatalf("after the update: %d %q", code, body)
		}
	}
	t.Logf("rolling update: %d requests, %d failed (%v)", l.Total(), l.Failed(), seen)
}

func testScale(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	spec := Spec("scaled", Echo("s"), 1)
	deploy(ctx, t, c, spec)
	spec.Versions[0].Scale.Replicas = 3
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := WaitFor(ctx, t, c, "scaled", func(st *driver.ServiceStatus) bool {
		return st.State == driver.Healthy && st.Versions[0].Ready == 3
	})
	if st.Versions[0].Replicas != 3 {
		t.Fatalf("replicas %d, want 3", st.Versions[0].Replicas)
	}
}

func testDelete(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	st := deploy(ctx, t, c, Spec("doomed", Echo("d"), 1))
	if err := c.DeleteService(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServiceStatus(ctx, "doomed"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("status after delete: %v, want NotFound", err)
	}
	code, _, err := Score(ctx, st.ScoringURI, "", `{}`)
	if err != nil || code != http.StatusNotFound {
		t.Errorf("scoring a deleted service: %d %v, want 404", code, err)
	}
}
