package endpoint_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
)

func ptr[T any](v T) *T { return &v }

// TestRolloutUnderLoad is a whole canary rollout while callers keep
// scoring: the canary goes 0 → 10 → 50 → 100 %, becomes the default and
// the old version is deleted. No caller may see a non-2xx answer; each
// step's answers follow the weights; at the end only the canary answers.
func TestRolloutUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	ep := e.create(ctx, t, "rollout", version("stable", 0, 2), e.echo(t, "stable"))
	if err := ep.CreateVersion(ctx, version("canary", 0, 2), e.echo(t, "canary")); err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	l := drivertest.StartLoad(ctx, t, e.client, ep.ScoringURI(), 2)
	l.Wait(ctx, t, 100)
	if got := l.Take(); got["canary"] != 0 {
		t.Errorf("canary at 0%% answered %d requests", got["canary"])
	}
	for _, pct := range []float64{10, 50, 100} {
		if err := ep.UpdateVersion(ctx, "canary", endpoint.VersionUpdate{TrafficPercentile: ptr(pct)}); err != nil {
			t.Fatal(err)
		}
		// UpdateVersion returns once the router applies the weights: the
		// answers counted from here on follow them (give or take the two
		// requests in flight).
		l.Take()
		l.Wait(ctx, t, 300)
		got := l.Take()
		share := 100 * float64(got["canary"]) / float64(got["canary"]+got["stable"])
		t.Logf("canary at %v%%: %v (%.1f%%)", pct, got, share)
		if diff := share - pct; diff > 3 || diff < -3 {
			t.Errorf("canary at %v%%: %.1f%% of answers", pct, share)
		}
	}
	// Promote: the canary becomes the default, the old one can go.
	if err := ep.UpdateVersion(ctx, "canary", endpoint.VersionUpdate{IsDefault: ptr(true), TrafficPercentile: ptr(0.0)}); err != nil {
		t.Fatal(err)
	}
	if err := ep.DeleteVersion(ctx, "stable"); err != nil {
		t.Fatal(err)
	}
	l.Wait(ctx, t, 200)
	tail := l.Tail(100)
	l.Stop()
	if f := l.Failures(); len(f) != 0 {
		t.Errorf("%d of %d requests failed during the rollout; first: %s", l.Failed(), l.Total(), f[0])
	}
	for i, tag := range tail {
		if tag != "canary" {
			t.Fatalf("after the rollout: answer %d of the last 100 from %q", i, tag)
		}
	}
	t.Logf("rollout: %d requests, %d failed", l.Total(), l.Failed())
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := ep.Status(ctx)
	if err != nil || len(st.Versions) != 1 || st.Versions[0].Name != "canary" {
		t.Errorf("status after the rollout: %+v %v", st, err)
	}
}

// TestUpdateVersionRuntimeRolls checks that a new model or inference
// config for one version is a rolling update of that version only: no
// caller sees an error and the other version keeps its replicas.
func TestUpdateVersionRuntimeRolls(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	ep := e.create(ctx, t, "rolling", version("control", 0, 1), e.echo(t, "control"))
	if err := ep.CreateVersion(ctx, version("treatment", 50, 2), e.echo(t, "treatment-1")); err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := e.cluster.Replicas("rolling")
	if err != nil {
		t.Fatal(err)
	}
	l := drivertest.StartLoad(ctx, t, e.client, ep.ScoringURI(), 2)
	l.Wait(ctx, t, 50)
	rt := e.echo(t, "treatment-2")
	if err := ep.UpdateVersion(ctx, "treatment", endpoint.VersionUpdate{Runtime: &rt, Description: ptr("second model")}); err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	l.Take()
	l.Wait(ctx, t, 200)
	got := l.Take()
	l.Stop()
	if f := l.Failures(); len(f) != 0 {
		t.Errorf("%d of %d requests failed during the rolling update; first: %s", l.Failed(), l.Total(), f[0])
	}
	// Each of the two callers may have had one request on an old replica
	// when Wait returned (old replicas drain what they hold).
	if got["treatment-1"] > 2 || got["treatment-2"] == 0 || got["control"] == 0 {
		t.Errorf("answers after the update: %v, want control and treatment-2 only", got)
	}
	after, err := e.cluster.Replicas("rolling")
	if err != nil {
		t.Fatal(err)
	}
	ids := func(rs []simulator.ReplicaInfo, v string) (out []string) {
		for _, r := range rs {
			if r.Version == v {
				out = append(out, r.ID)
			}
		}
		return out
	}
	if b, a := ids(before, "control"), ids(after, "control"); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("control replicas %v → %v: another version's update must not touch them", b, a)
	}
	if b, a := ids(before, "treatment"), ids(after, "treatment"); len(a) != 2 || strings.Contains(fmt.Sprint(b), a[0]) {
		t.Errorf("treatment replicas %v → %v: want two new ones", b, a)
	}
	if d := ep.Record().Versions[1].Config.Description; d != "second model" {
		t.Errorf("description %q", d)
	}
}

// TestCrashedVersionFallsBack kills every replica of a serving version
// whose model then fails to load on restart: its share goes to the
// default version at once, callers see no error, the endpoint's status
// and the router say which version serves no traffic, and the share comes
// back when the version recovers.
func TestCrashedVersionFallsBack(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	var broken atomic.Bool
	flaky := func() scoring.Handler {
		h := &drivertest.EchoHandler{Tag: "canary"}
		if broken.Load() {
			h.InitErr = errors.New("model file azureml-models/canary/2/model.pkl is corrupt")
		}
		return h
	}
	ep := e.create(ctx, t, "crashy", version("stable", 0, 2), e.echo(t, "stable"))
	if err := ep.CreateVersion(ctx, version("canary", 40, 2), e.runtime(t, flaky)); err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	l := drivertest.StartLoad(ctx, t, e.client, ep.ScoringURI(), 2)
	l.Wait(ctx, t, 100)
	if got := l.Take(); got["canary"] < 30 {
		t.Fatalf("canary at 40%% answered %v", got)
	}

	broken.Store(true)
	failedBefore := l.Failed()
	reps, err := e.cluster.Replicas("crashy")
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, r := range reps {
		if r.Version == "canary" {
			if err := e.cluster.KillReplica(ctx, r.ID); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed != 2 {
		t.Fatalf("killed %d canary replicas, want 2", killed)
	}
	// Each replica restarts at once, fails to load, restarts again and
	// fails: CrashLoopBackOff, with a back-off the fake clock holds.
	var cv driver.VersionStatus
	for {
		st, err := ep.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cv = st.Versions[1]
		if strings.Contains(cv.Message, "CrashLoopBackOff") && st.State == driver.Unhealthy {
			if !strings.Contains(st.Message, "version canary") {
				t.Errorf("endpoint message %q does not name the version", st.Message)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the canary never reached CrashLoopBackOff: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if cv.ServesTraffic || cv.Ready != 0 || cv.Restarts < 2 {
		t.Errorf("crashed version status %+v: want no traffic, no ready replica, restarts counted", cv)
	}
	// Answers to requests sent before the crash may still arrive.
	l.Settle(ctx, t)
	l.Wait(ctx, t, 200)
	if got := l.Take(); got["canary"] != 0 || got["stable"] < 200 {
		t.Errorf("answers while the canary is down: %v, want all from stable", got)
	}
	rs := e.stats(t, "crashy")
	if !rs.Fallback || versionStats(rs, "canary").EffectivePercent != 0 || versionStats(rs, "stable").EffectivePercent != 100 || versionStats(rs, "canary").Routable {
		t.Errorf("router while the canary is down: %+v", rs)
	}
	// A request a canary replica was serving when it was killed may have
	// been read by it, so the router answers it 502 rather than run it
	// twice: at most one per load caller (2). Every later request must
	// fall back to stable.
	if f := l.Failures(); failedBefore != 0 || l.Failed()-failedBefore > 2 {
		t.Errorf("%d of %d requests failed while the canary crashed (%d before the kill, at most 2 in flight may fail); first: %s", l.Failed(), l.Total(), failedBefore, f[0])
	}
	failedInCrash := l.Failed()

	// The model is fixed; after the back-off the replicas start and the
	// canary takes its 40 % again.
	broken.Store(false)
	for {
		e.clock.Step(10 * time.Second)
		st, err := ep.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Versions[1].Ready == 2 && st.State == driver.Healthy {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the canary never recovered: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.Take()
	l.Wait(ctx, t, 200)
	got := l.Take()
	l.Stop()
	if got["canary"] < 60 {
		t.Errorf("after recovery: %v, want about 40%% canary", got)
	}
	if rs := e.stats(t, "crashy"); rs.Fallback || versionStats(rs, "canary").EffectivePercent != 40 {
		t.Errorf("router after recovery: %+v", rs)
	}
	if n := l.Failed() - failedInCrash; n != 0 {
		t.Errorf("%d of %d requests failed after the canary recovered; first failure of the run: %s", n, l.Total(), l.Failures()[0])
	}
	t.Logf("crash and recovery: %d requests, %d failed while a canary replica was being killed", l.Total(), l.Failed())
}

// TestMetrics checks the per-version metrics in Prometheus text at the
// cluster's metrics URI and through the Go API (the router's Stats):
// requests by status, errors, latency and in-flight requests.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	ep := e.create(ctx, t, "measured", version("alpha", 70, 1), e.echo(t, "alpha"))
	if err := ep.CreateVersion(ctx, version("beta", 30, 1), e.echo(t, "beta")); err != nil {
		t.Fatal(err)
	}
	failing := drivertest.Func(func(ctx context.Context, in []byte) ([]byte, error) { return nil, errors.New("model exploded") })
	if err := ep.CreateVersion(ctx, version("gamma", 0, 1), e.runtime(t, failing)); err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := ep.Run(ctx, `{}`); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := ep.RunVersion(ctx, "gamma", `{}`); err == nil {
			t.Fatal("the failing version answered")
		}
	}
	rs := e.stats(t, "measured")
	for _, k := range []struct {
		version       string
		requests, ok  uint64
		errors, e502  uint64
		effective     float64
		wantLatencies bool
	}{
		{"alpha", 70, 70, 0, 0, 70, true},
		{"beta", 30, 30, 0, 0, 30, true},
		{"gamma", 3, 0, 3, 3, 0, true},
	} {
		v := versionStats(rs, k.version)
		if v.Requests != k.requests || v.Responses[200] != k.ok || v.Errors != k.errors || v.Responses[502] != k.e502 ||
			v.EffectivePercent != k.effective || v.InFlight != 0 || (v.LatencySum > 0) != k.wantLatencies {
			t.Errorf("Stats %s: %+v", k.version, v)
		}
	}
	cs, err := e.target.Cluster().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(cs.ScoringBaseURL + frontend.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`aksml_frontend_requests_total{code="200",service="measured",version="alpha"} 70`,
		`aksml_frontend_requests_total{code="200",service="measured",version="beta"} 30`,
		`aksml_frontend_requests_total{code="502",service="measured",version="gamma"} 3`,
		`aksml_frontend_errors_total{code="502",service="measured",version="gamma"} 3`,
		`aksml_frontend_request_duration_seconds_count{service="measured",version="alpha"} 70`,
		`aksml_frontend_request_duration_seconds_bucket{service="measured",version="beta",le="+Inf"} 30`,
		`aksml_frontend_in_flight_requests{service="measured",version="alpha"} 0`,
		`aksml_frontend_traffic_percent{service="measured",version="beta"} 30`,
		`aksml_frontend_ready_replicas{service="measured",version="gamma"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The histogram's sum agrees with the Go API's latency sum.
	m := regexp.MustCompile(`aksml_frontend_request_duration_seconds_sum\{service="measured",version="alpha"\} (\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no latency sum for alpha")
	}
	sum, _ := strconv.ParseFloat(m[1], 64)
	if api := versionStats(rs, "alpha").LatencySum.Seconds(); sum < api*0.999 || sum <= 0 {
		t.Errorf("latency sum %v s in the exposition, %v s through Stats", sum, api)
	}
}

// TestMirroring mirrors a share of live traffic to two versions through
// UpdateVersion: each gets exactly its share of copies, callers only see
// the serving version's answers, and mirrored copies are not counted as
// live requests.
func TestMirroring(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	ep := e.create(ctx, t, "shadowed", version("live", 0, 1), e.echo(t, "live"))
	for _, v := range []string{"shadow-a", "shadow-b"} {
		cfg := version(v, 0, 1)
		cfg.ReplicaMaxConcurrentRequests = 32
		if err := ep.CreateVersion(ctx, cfg, e.echo(t, v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ep.UpdateVersion(ctx, "shadow-a", endpoint.VersionUpdate{MirrorPercent: ptr(30.0)}); err != nil {
		t.Fatal(err)
	}
	if err := ep.UpdateVersion(ctx, "shadow-b", endpoint.VersionUpdate{MirrorPercent: ptr(100.0)}); err != nil {
		t.Fatal(err)
	}
	if r := ep.Record(); r.Versions[1].MirrorPercent != 30 || r.Versions[2].MirrorPercent != 100 {
		t.Errorf("record mirror percents %v %v", r.Versions[1].MirrorPercent, r.Versions[2].MirrorPercent)
	}
	for i := range 100 {
		out, err := ep.Run(ctx, fmt.Sprintf(`{"i":%d}`, i))
		if err != nil || tagOf(t, out) != "live" {
			t.Fatalf("request %d: %s %v", i, out, err)
		}
	}
	var a, b frontend.VersionStats
	for deadline := time.Now().Add(20 * time.Second); ; {
		rs := e.stats(t, "shadowed")
		a, b = versionStats(rs, "shadow-a"), versionStats(rs, "shadow-b")
		if a.Mirrored+a.MirrorDropped+a.MirrorFailed >= 30 && b.Mirrored+b.MirrorDropped+b.MirrorFailed >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if a.Mirrored != 30 || b.Mirrored != 100 || a.MirrorDropped+a.MirrorFailed+b.MirrorDropped+b.MirrorFailed != 0 {
		t.Errorf("mirrors: shadow-a %d sent %d dropped %d failed, shadow-b %d sent %d dropped %d failed; want 30 and 100 sent",
			a.Mirrored, a.MirrorDropped, a.MirrorFailed, b.Mirrored, b.MirrorDropped, b.MirrorFailed)
	}
	if a.Requests != 0 || b.Requests != 0 {
		t.Errorf("mirrors counted live requests: %d %d", a.Requests, b.Requests)
	}
	// Mirroring off: no more copies.
	if err := ep.UpdateVersion(ctx, "shadow-b", endpoint.VersionUpdate{MirrorPercent: ptr(0.0)}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := ep.Run(ctx, `{}`); err != nil {
			t.Fatal(err)
		}
	}
	// A copy is counted in flight before the caller's answer leaves the
	// router, so none is on its way unseen.
	if got := versionStats(e.stats(t, "shadowed"), "shadow-b"); got.Mirrored != 100 || got.InFlight != 0 || got.MirrorDropped != 0 {
		t.Errorf("shadow-b after mirroring stopped: %d copies, %d in flight, %d dropped; want still 100 and none", got.Mirrored, got.InFlight, got.MirrorDropped)
	}
}

// TestConcurrentUse scores, reads the status and lists versions from one
// goroutine while another changes the weights: the race detector checks
// that an Endpoint is safe for concurrent use.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	ep := e.create(ctx, t, "shared", version("one", 0, 1), e.echo(t, "one"))
	if err := ep.CreateVersion(ctx, version("two", 10, 1), e.echo(t, "two")); err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := ep.Run(ctx, `{}`); err != nil {
				errs <- err
				return
			}
			if _, err := ep.Status(ctx); err != nil {
				errs <- err
				return
			}
			_ = ep.Name()
			_ = ep.Versions()
			_ = ep.Record()
		}
	}()
	for i := range 20 {
		p := float64(10 + 5*(i%2))
		if err := ep.UpdateVersion(ctx, "two", endpoint.VersionUpdate{TrafficPercentile: &p}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
