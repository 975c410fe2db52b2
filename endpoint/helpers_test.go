package endpoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// env is a workspace and a DevTest target on a simulator whose clock the
// test steps (probes, back-off), with the simulated cluster at hand for
// fault injection and the router's statistics.
type env struct {
	ws      *aml.Workspace
	clock   *testingclock.FakeClock
	target  *compute.Target
	cluster *simulator.Cluster
	client  *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	ws, err := aml.Open(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	clk := testingclock.NewFakeClock(time.Now())
	sim := simulator.New(&simulator.Options{Clock: clk, DrainDelay: 20 * time.Millisecond})
	t.Cleanup(func() { sim.Close() })
	target, err := compute.Create(ctx, ws, "aks-ep", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	c, ok := sim.SimCluster("aks-ep")
	if !ok {
		t.Fatal("simulated cluster aks-ep not found")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &env{ws: ws, clock: clk, target: target, cluster: c, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runtime is a Go-handler runtime (no models, no Python).
func (e *env) runtime(t *testing.T, h scoring.NewHandler) webservice.Runtime {
	t.Helper()
	rt, err := aml.Runtime(context.Background(), e.ws, "ep", nil, &aml.InferenceConfig{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// echo is a runtime answering {"echo": input, "tag": tag}.
func (e *env) echo(t *testing.T, tag string) webservice.Runtime {
	return e.runtime(t, drivertest.Echo(tag))
}

// version is a version config without auth, with replicas fixed and a
// long queue wait so that a busy machine never turns a queued request
// into a 503.
func version(name string, pct float64, replicas int) endpoint.VersionConfig {
	return endpoint.VersionConfig{
		VersionName:       name,
		TrafficPercentile: pct,
		DeployConfig:      webservice.DeployConfig{NumReplicas: replicas, AuthEnabled: new(false), MaxRequestWaitTimeMs: 10000},
	}
}

// create makes an endpoint and waits for it.
func (e *env) create(ctx context.Context, t *testing.T, name string, first endpoint.VersionConfig, rt webservice.Runtime) *endpoint.Endpoint {
	t.Helper()
	ep, err := endpoint.Create(ctx, e.target, name, first, rt, nil)
	if err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatalf("Wait(%s): %v", name, err)
	}
	return ep
}

// stats returns the router's view of an endpoint.
func (e *env) stats(t *testing.T, name string) frontend.RouteStats {
	t.Helper()
	rs, err := e.cluster.Router().Stats(name)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func versionStats(rs frontend.RouteStats, name string) frontend.VersionStats {
	for _, v := range rs.Versions {
		if v.Name == name {
			return v
		}
	}
	return frontend.VersionStats{}
}

// tagOf reads the Echo tag of a scoring answer.
func tagOf(t *testing.T, out []byte) string {
	t.Helper()
	var got struct {
		Tag string `json:"tag"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	return got.Tag
}

// post scores body on uri with optional header pairs and returns the
// status, the Echo tag and the body.
func (e *env) post(ctx context.Context, uri, body string, headers ...string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	var got struct {
		Tag string `json:"tag"`
	}
	_ = json.Unmarshal(b, &got)
	return resp.StatusCode, got.Tag, string(b), err
}

// wantErr checks that err carries code and mentions every substring.
func wantErr(t *testing.T, what string, err error, code *errcode.Code, substrs ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %v", what, code)
		return
	}
	if !errors.Is(err, code) {
		t.Errorf("%s: error %q does not carry %v", what, err, code)
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: error %q does not mention %q", what, err, s)
		}
	}
}
