package drivertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/scoring"
)

// Headers and paths of the front-end every backend puts in front of its
// replicas (package frontend). They are repeated here so that the suite
// checks the documented contract rather than importing it.
const (
	headerVersion      = "aksml-version"
	headerVersionAlias = "azureml-model-deployment"
	headerCallerKey    = "aksml-caller-key"
	headerServedBy     = "aksml-served-by"
	pathMetrics        = "/metrics"
)

// EndpointVersion is one version of an endpoint built by EndpointSpec.
type EndpointVersion struct {
	Name           string
	TrafficPercent float64
	IsDefault      bool
	MirrorPercent  float64
	// Handler runs the version's model; nil means Echo(Name), so the
	// version's name comes back as the response's "tag".
	Handler scoring.NewHandler
	// Replicas is the fixed replica count; 0 means 1.
	Replicas int
	// MaxConcurrentPerReplica is the replica's slot count; 0 means 1.
	MaxConcurrentPerReplica int
}

// EndpointSpec returns an endpoint spec (IsEndpoint, no auth) with the
// given versions, each with small requests, a long queue wait (10 s, so a
// busy machine never turns a queued request into a 503) and fixed replicas.
func EndpointSpec(name string, versions ...EndpointVersion) *driver.ServiceSpec {
	sp := &driver.ServiceSpec{Name: name, IsEndpoint: true, Auth: driver.Auth{Mode: driver.AuthNone}}
	for _, v := range versions {
		h := v.Handler
		if h == nil {
			h = Echo(v.Name)
		}
		vs := Spec(v.Name, h, max(v.Replicas, 1)).Versions[0]
		vs.TrafficPercent, vs.IsDefault, vs.MirrorPercent = v.TrafficPercent, v.IsDefault, v.MirrorPercent
		vs.Replica.MaxQueueWait = 10 * time.Second
		vs.Replica.MaxConcurrentPerReplica = max(v.MaxConcurrentPerReplica, 1)
		sp.Versions = append(sp.Versions, vs)
	}
	return sp
}

// RunEndpointTests runs the endpoint (AksEndpoint, controlled rollout)
// cases against h: exact splits, header targeting, sticky callers,
// mirroring, a traffic shift under load, readiness fallback, and the
// per-version metrics of the front-end. RunConformanceTests calls it.
func RunEndpointTests(t *testing.T, h Harness) {
	t.Run("EndpointExactSplits", func(t *testing.T) { testEndpointSplits(t, h) })
	t.Run("EndpointHeaderTargeting", func(t *testing.T) { testEndpointTargeting(t, h) })
	t.Run("EndpointStickyCallers", func(t *testing.T) { testEndpointSticky(t, h) })
	t.Run("EndpointMirroring", func(t *testing.T) { testEndpointMirroring(t, h) })
	t.Run("EndpointShiftUnderLoad", func(t *testing.T) { testEndpointShift(t, h) })
	t.Run("EndpointCrashingVersionFallsBack", func(t *testing.T) { testEndpointCrashFallback(t, h) })
	t.Run("EndpointMetrics", func(t *testing.T) { testEndpointMetrics(t, h) })
}

// epClient is an HTTP client that keeps enough idle connections for the
// suite's concurrent callers.
func epClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// reply is one scoring answer: status, the Echo tag of the version that
// ran the model, the router's served-by header and the raw body.
type reply struct {
	code   int
	tag    string
	served string
	body   string
}

// post scores body on uri with extra headers (name, value pairs).
func post(ctx context.Context, hc *http.Client, uri, body string, headers ...string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, served: resp.Header.Get(headerServedBy), body: string(b)}
	var got struct {
		Tag string `json:"tag"`
	}
	if json.Unmarshal(b, &got) == nil {
		r.tag = got.Tag
	}
	return r, err
}

// deployAll applies every spec, then waits until each is Healthy.
func deployAll(ctx context.Context, t *testing.T, c driver.Cluster, specs ...*driver.ServiceSpec) map[string]*driver.ServiceStatus {
	t.Helper()
	for _, sp := range specs {
		if err := c.ApplyService(ctx, sp); err != nil {
			t.Fatalf("ApplyService(%s): %v", sp.Name, err)
		}
	}
	out := map[string]*driver.ServiceStatus{}
	for _, sp := range specs {
		st := WaitState(ctx, t, c, sp.Name, driver.Healthy, driver.Failed, driver.Unschedulable)
		if st.State != driver.Healthy {
			t.Fatalf("endpoint %s: state %s, want Healthy: %s", sp.Name, st.State, st.Message)
		}
		out[sp.Name] = st
	}
	return out
}

// Deviations returns, over a sequence of picks (version indexes into
// shares, each share a fraction of 1), the largest
// |count(v) − share(v)×N| over every window of consecutive picks and over
// the prefixes only. A window's deviation is D(b) − D(a) with D(n) =
// count(v in the first n) − n×share(v), so the worst window is max D − min D.
func Deviations(seq []int, shares []float64) (window, prefix float64) {
	for v, s := range shares {
		d, lo, hi := 0.0, 0.0, 0.0
		for _, x := range seq {
			if x == v {
				d++
			}
			d -= s
			lo, hi = math.Min(lo, d), math.Max(hi, d)
			prefix = math.Max(prefix, math.Abs(d))
		}
		window = math.Max(window, hi-lo)
	}
	return window, prefix
}

// testEndpointSplits checks the exact split: over any window of N
// consecutive requests each version's count is within one of share×N for
// two and three versions, and for six versions within one over every
// prefix (from the moment the weights are installed) and within two over
// any window, the bounds the front-end documents (no sequence keeps every
// window within one for arbitrary shares of three or more versions).
// The serving version is read from the Echo tag of each response.
func testEndpointSplits(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	hc := epClient(t)
	type tc struct {
		name      string
		versions  []EndpointVersion
		shares    []float64
		maxWindow float64
	}
	cases := []tc{
		{"split-20-80", []EndpointVersion{{Name: "a", TrafficPercent: 20}, {Name: "b", TrafficPercent: 80, IsDefault: true}}, []float64{.2, .8}, 1},
		{"split-10-30-60", []EndpointVersion{{Name: "a", TrafficPercent: 10}, {Name: "b", TrafficPercent: 30}, {Name: "c", IsDefault: true}}, []float64{.1, .3, .6}, 1},
		{"split-six", []EndpointVersion{
			{Name: "v1", TrafficPercent: 5}, {Name: "v2", TrafficPercent: 10}, {Name: "v3", TrafficPercent: 15},
			{Name: "v4", TrafficPercent: 20}, {Name: "v5", TrafficPercent: 25}, {Name: "v6", IsDefault: true},
		}, []float64{.05, .10, .15, .20, .25, .25}, 2},
	}
	var specs []*driver.ServiceSpec
	for _, k := range cases {
		specs = append(specs, EndpointSpec(k.name, k.versions...))
	}
	sts := deployAll(ctx, t, c, specs...)
	const n = 500
	for _, k := range cases {
		idx := map[string]int{}
		for i, v := range k.versions {
			idx[v.Name] = i
		}
		seq := make([]int, 0, n)
		for i := range n {
			r, err := post(ctx, hc, sts[k.name].ScoringURI, fmt.Sprintf(`{"i":%d}`, i))
			if err != nil || r.code != 200 {
				t.Fatalf("%s: request %d: %d %q %v", k.name, i, r.code, r.body, err)
			}
			v, ok := idx[r.tag]
			if !ok || r.served != r.tag {
				t.Fatalf("%s: request %d answered by tag %q, served-by %q", k.name, i, r.tag, r.served)
			}
			seq = append(seq, v)
		}
		window, prefix := Deviations(seq, k.shares)
		counts := make([]int, len(k.versions))
		for _, v := range seq {
			counts[v]++
		}
		t.Logf("%s: %d requests, counts %v, largest deviation from share×N: %.3f over any window, %.3f over prefixes", k.name, n, counts, window, prefix)
		if window > k.maxWindow+1e-9 {
			t.Errorf("%s: a window of consecutive requests deviates by %.3f from share×N, want ≤ %v", k.name, window, k.maxWindow)
		}
		if prefix >= 1 {
			t.Errorf("%s: a prefix deviates by %.3f from share×N, want < 1", k.name, prefix)
		}
	}
}

// testEndpointTargeting checks that the version header (and its Azure ML v2
// alias, and the per-version URI) pick a version whatever the weights and
// the caller key, that an unknown version is 404, and that an asked-for
// version without a ready replica is 503 rather than silently another.
func testEndpointTargeting(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	hc := epClient(t)
	broken := func() scoring.Handler { return &EchoHandler{InitErr: errors.New("model file missing")} }
	sp := EndpointSpec("targeted",
		EndpointVersion{Name: "blue", IsDefault: true},
		EndpointVersion{Name: "green", TrafficPercent: 10},
		EndpointVersion{Name: "gray"},
		EndpointVersion{Name: "down", Handler: broken},
	)
	if err := c.ApplyService(ctx, sp); err != nil {
		t.Fatal(err)
	}
	st := WaitFor(ctx, t, c, "targeted", func(st *driver.ServiceStatus) bool {
		for _, v := range st.Versions {
			if v.Name != "down" && v.Ready < 1 {
				return false
			}
		}
		return true
	})
	uri := st.ScoringURI
	versionURI := map[string]string{}
	for _, v := range st.Versions {
		versionURI[v.Name] = v.ScoringURI
		if want := strings.TrimSuffix(uri, "/score") + "/versions/" + v.Name + "/score"; v.ScoringURI != want {
			t.Errorf("version %s scoring URI %q, want %q", v.Name, v.ScoringURI, want)
		}
	}
	for _, k := range []struct {
		name    string
		uri     string
		headers []string
		want    int
		tag     string
	}{
		{"header to a 0% version", uri, []string{headerVersion, "gray"}, 200, "gray"},
		{"header to a 10% version", uri, []string{headerVersion, "green"}, 200, "green"},
		{"alias header", uri, []string{headerVersionAlias, "gray"}, 200, "gray"},
		{"header beats caller key", uri, []string{headerVersion, "gray", headerCallerKey, "caller-1"}, 200, "gray"},
		{"per-version URI", versionURI["gray"], nil, 200, "gray"},
		{"per-version URI of the default", versionURI["blue"], nil, 200, "blue"},
		{"unknown version", uri, []string{headerVersion, "purple"}, 404, ""},
		{"version without a ready replica", uri, []string{headerVersion, "down"}, 503, ""},
	} {
		for i := range 20 {
			r, err := post(ctx, hc, k.uri, `{"x":1}`, k.headers...)
			if err != nil || r.code != k.want || r.tag != k.tag {
				t.Errorf("%s (request %d): %d tag %q body %q %v, want %d from %q", k.name, i, r.code, r.tag, r.body, err, k.want, k.tag)
				break
			}
		}
	}
	// The header did not disturb the split of untargeted traffic: 0% and
	// unready versions get none of it.
	for i := range 50 {
		r, err := post(ctx, hc, uri, `{}`)
		if err != nil || r.code != 200 || (r.tag != "blue" && r.tag != "green") {
			t.Fatalf("untargeted request %d: %d %q %v, want blue or green", i, r.code, r.body, err)
		}
	}
}

// stickyCallers is how many caller keys testEndpointSticky sends, twice
// each, through the front-end. (Package frontend measures 10,000 keys on
// its picking function directly.)
const stickyCallers = 2000

// testEndpointSticky checks that a caller key keeps a caller on one version
// and that moving a version from 10% to 20% moves about 10% of the
// callers, all of them towards that version.
func testEndpointSticky(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	hc := epClient(t)
	spec := func(canary float64) *driver.ServiceSpec {
		return EndpointSpec("sticky",
			EndpointVersion{Name: "stable", IsDefault: true, Replicas: 2, MaxConcurrentPerReplica: 8},
			EndpointVersion{Name: "canary", TrafficPercent: canary, Replicas: 2, MaxConcurrentPerReplica: 8})
	}
	st := deployAll(ctx, t, c, spec(10))["sticky"]
	const keys = stickyCallers
	assign := func() []string {
		out := make([]string, keys)
		var next atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= keys || firstErr.Load() != nil {
						return
					}
					r, err := post(ctx, hc, st.ScoringURI, `{}`, headerCallerKey, fmt.Sprintf("caller-%05d", i))
					if err != nil || r.code != 200 {
						firstErr.CompareAndSwap(nil, fmt.Sprintf("caller %d: %d %q %v", i, r.code, r.body, err))
						return
					}
					out[i] = r.tag
				}
			}()
		}
		wg.Wait()
		if e := firstErr.Load(); e != nil {
			t.Fatal(e)
		}
		return out
	}
	before := assign()
	// The same callers again, in another order of arrival: same versions.
	for i := 0; i < 300; i++ {
		k := (i * 7919) % keys
		r, err := post(ctx, hc, st.ScoringURI, `{}`, headerCallerKey, fmt.Sprintf("caller-%05d", k))
		if err != nil || r.code != 200 || r.tag != before[k] {
			t.Fatalf("caller %d went to %q (%d %v), first to %q", k, r.tag, r.code, err, before[k])
		}
	}
	if err := c.ApplyService(ctx, spec(20)); err != nil {
		t.Fatal(err)
	}
	WaitState(ctx, t, c, "sticky", driver.Healthy)
	after := assign()
	share := func(tags []string) float64 {
		n := 0
		for _, g := range tags {
			if g == "canary" {
				n++
			}
		}
		return float64(n) / keys
	}
	toCanary, toStable := 0, 0
	for i := range keys {
		switch {
		case before[i] == "stable" && after[i] == "canary":
			toCanary++
		case before[i] == "canary" && after[i] == "stable":
			toStable++
		}
	}
	moved := float64(toCanary+toStable) / keys
	t.Logf("sticky: canary share %.4f at 10%%, %.4f at 20%%; 10%%→20%% moved %.4f of %d callers (%d to canary, %d away)",
		share(before), share(after), moved, keys, toCanary, toStable)
	// Hashing is a fair coin per caller: 3 standard deviations of a
	// binomial share over 2,000 callers are under 3 points.
	if s := share(before); math.Abs(s-0.10) > 0.03 {
		t.Errorf("canary share at 10%%: %.4f", s)
	}
	if s := share(after); math.Abs(s-0.20) > 0.03 {
		t.Errorf("canary share at 20%%: %.4f", s)
	}
	if math.Abs(moved-0.10) > 0.03 || toStable != 0 {
		t.Errorf("10%%→20%% moved %.4f of callers (%d away from the canary), want about 0.10, all towards the canary", moved, toStable)
	}
}

// sleeper is a model that takes d to answer (a deliberately slow version).
func sleeper(tag string, d time.Duration) scoring.NewHandler {
	return Func(func(ctx context.Context, in []byte) ([]byte, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return json.Marshal(map[string]string{"tag": tag})
	})
}

// percentile returns the p-th percentile (0–100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// testEndpointMirroring checks that mirroring copies its share of live
// requests to one or several versions, while callers get the same answers
// and do not wait for the copies: measured in rounds without mirrors, with
// 50% + 20% mirrored to two deliberately slow versions, and with the same
// shares mirrored to two fast ones (so that what the copies cost the
// machine is told apart from waiting for them).
func testEndpointMirroring(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	hc := epClient(t)
	const slow = 100 * time.Millisecond
	const off, toSlow, toFast = 0, 1, 2
	spec := func(mode int) *driver.ServiceSpec {
		pct := func(m int, p float64) float64 {
			if m == mode {
				return p
			}
			return 0
		}
		return EndpointSpec("mirrored",
			EndpointVersion{Name: "stable", IsDefault: true, Replicas: 1},
			EndpointVersion{Name: "slow-a", MirrorPercent: pct(toSlow, 50), Handler: sleeper("slow-a", slow), Replicas: 2, MaxConcurrentPerReplica: 128},
			EndpointVersion{Name: "slow-b", MirrorPercent: pct(toSlow, 20), Handler: sleeper("slow-b", slow), Replicas: 1, MaxConcurrentPerReplica: 128},
			EndpointVersion{Name: "fast-a", MirrorPercent: pct(toFast, 50), Replicas: 1, MaxConcurrentPerReplica: 128},
			EndpointVersion{Name: "fast-b", MirrorPercent: pct(toFast, 20), Replicas: 1, MaxConcurrentPerReplica: 128})
	}
	st := deployAll(ctx, t, c, spec(off))["mirrored"]
	const warm = 50
	for i := range warm { // open connections
		if r, err := post(ctx, hc, st.ScoringURI, `{}`); err != nil || r.code != 200 {
			t.Fatalf("warm-up %d: %d %v", i, r.code, err)
		}
	}
	const rounds, perRound = 4, 100
	lat := make([][]time.Duration, 3)
	for round := range 3 * rounds {
		mode := round % 3
		if err := c.ApplyService(ctx, spec(mode)); err != nil {
			t.Fatal(err)
		}
		WaitState(ctx, t, c, "mirrored", driver.Healthy)
		for i := range perRound {
			body := fmt.Sprintf(`{"round":%d,"i":%d}`, round, i)
			t0 := time.Now()
			r, err := post(ctx, hc, st.ScoringURI, body)
			d := time.Since(t0)
			want := `{"echo":` + body + `,"tag":"stable"}`
			if err != nil || r.code != 200 || r.body != want {
				t.Fatalf("mode %d request %d: %d %q %v, want 200 %s", mode, i, r.code, r.body, err, want)
			}
			lat[mode] = append(lat[mode], d)
		}
	}
	p50 := func(m int) time.Duration { return percentile(lat[m], 50) }
	p99 := func(m int) time.Duration { return percentile(lat[m], 99) }
	t.Logf("mirroring: caller latency p50/p99 without mirrors %v/%v; 50%%+20%% mirrored to %v-slow versions %v/%v; to fast versions %v/%v",
		p50(off), p99(off), slow, p50(toSlow), p99(toSlow), p50(toFast), p99(toFast))
	// A caller that waited for a mirror would take at least slow; 70% of
	// them are mirrored, so even the median would show it.
	if p99(toSlow) >= slow {
		t.Errorf("with slow mirrors, caller p99 %v reaches the mirror's latency %v", p99(toSlow), slow)
	}
	// A slow mirror costs callers no more than a fast one, and mirroring
	// costs them little (the copies share the machine).
	if p50(toSlow) > p50(toFast)*3/2+time.Millisecond {
		t.Errorf("caller p50 %v with slow mirrors against %v with fast ones", p50(toSlow), p50(toFast))
	}
	if p50(toSlow) > 2*p50(off)+2*time.Millisecond {
		t.Errorf("caller p50 %v with mirrors against %v without", p50(toSlow), p50(off))
	}
	// The mirrors got exactly their share of their rounds.
	mirrored := rounds * perRound
	want := map[string]float64{"slow-a": float64(mirrored) * 50 / 100, "slow-b": float64(mirrored) * 20 / 100,
		"fast-a": float64(mirrored) * 50 / 100, "fast-b": float64(mirrored) * 20 / 100}
	base := baseURL(ctx, t, c)
	var mf map[string]*dto.MetricFamily
	for deadline := time.Now().Add(20 * time.Second); ; {
		mf = scrape(ctx, t, hc, base)
		done := true
		for v, n := range want {
			total := 0.0
			for _, res := range []string{"sent", "dropped", "failed"} {
				total += metricValue(mf, "aksml_frontend_mirrored_requests_total", "mirrored", v, "result", res)
			}
			if total < n {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for v, n := range want {
		sent := metricValue(mf, "aksml_frontend_mirrored_requests_total", "mirrored", v, "result", "sent")
		dropped := metricValue(mf, "aksml_frontend_mirrored_requests_total", "mirrored", v, "result", "dropped")
		failed := metricValue(mf, "aksml_frontend_mirrored_requests_total", "mirrored", v, "result", "failed")
		t.Logf("mirror %s: %v sent, %v dropped, %v failed of %v requests", v, sent, dropped, failed, mirrored)
		if sent != n || dropped != 0 || failed != 0 {
			t.Errorf("mirror %s: %v sent, %v dropped, %v failed; want exactly %v sent", v, sent, dropped, failed, n)
		}
		if live := metricValue(mf, "aksml_frontend_requests_total", "mirrored", v, "code", "200"); live != 0 {
			t.Errorf("mirror %s counted %v live requests, want 0", v, live)
		}
	}
	if live := metricValue(mf, "aksml_frontend_requests_total", "mirrored", "stable", "code", "200"); live != float64(warm+3*rounds*perRound) {
		t.Errorf("stable answered %v live requests, want %d", live, warm+3*rounds*perRound)
	}
}

// testEndpointShift moves a canary from 0 to 100% in steps under continuous
// load: no caller may see a non-2xx answer, and at 100% every request goes
// to the canary.
func testEndpointShift(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	hc := epClient(t)
	spec := func(canary float64) *driver.ServiceSpec {
		return EndpointSpec("shifting",
			EndpointVersion{Name: "stable", IsDefault: true, Replicas: 2},
			EndpointVersion{Name: "canary", TrafficPercent: canary, Replicas: 2})
	}
	st := deployAll(ctx, t, c, spec(0))["shifting"]
	l := StartLoad(ctx, t, hc, st.ScoringURI, 2)
	l.Wait(ctx, t, 100)
	l.Take()
	for _, pct := range []float64{10, 25, 50, 75, 100} {
		if err := c.ApplyService(ctx, spec(pct)); err != nil {
			t.Fatal(err)
		}
		l.Wait(ctx, t, 200)
		got := l.Take()
		t.Logf("canary at %v%%: %d stable, %d canary answers", pct, got["stable"], got["canary"])
	}
	l.Wait(ctx, t, 100)
	tail := l.Tail(50)
	l.Stop()
	if n := l.Failed(); n != 0 {
		t.Errorf("0→100%% shift: %d of %d requests were not 2xx; first: %v", n, l.Total(), l.Failures()[0])
	}
	if len(tail) != 50 {
		t.Fatalf("at 100%%: %d answers, want at least 50", len(tail))
	}
	for i, tag := range tail {
		if tag != "canary" {
			t.Fatalf("at 100%%: request %d of the last 50 answered by %q", i, tag)
		}
	}
	t.Logf("0→100%% shift: %d requests, %d non-2xx", l.Total(), l.Failed())
}

// testEndpointCrashFallback adds, under load, a version whose replicas all
// crash in init: its share goes to the default version, no caller sees an
// error, and the status says the version serves no traffic.
func testEndpointCrashFallback(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	hc := epClient(t)
	stable := EndpointVersion{Name: "stable", IsDefault: true, Replicas: 2}
	st := deployAll(ctx, t, c, EndpointSpec("falling", stable))["falling"]
	l := StartLoad(ctx, t, hc, st.ScoringURI, 2)
	l.Wait(ctx, t, 50)
	crashing := func() scoring.Handler {
		return &EchoHandler{Tag: "crashing", InitErr: errors.New("CUDA error: no kernel image is available")}
	}
	sp := EndpointSpec("falling", stable, EndpointVersion{Name: "crashing", TrafficPercent: 40, Handler: crashing, Replicas: 2})
	if err := c.ApplyService(ctx, sp); err != nil {
		t.Fatal(err)
	}
	// Let the replicas crash and restart while traffic flows.
	for h.Advance(10 * time.Second) {
		st, err := c.ServiceStatus(ctx, "falling")
		if err == nil && len(st.Versions) == 2 && st.Versions[1].Restarts >= 2 {
			break
		}
		if ctx.Err() != nil {
			break
		}
		l.Wait(ctx, t, 20)
	}
	st2 := WaitFor(ctx, t, c, "falling", func(st *driver.ServiceStatus) bool {
		return len(st.Versions) == 2 && st.Versions[1].Restarts >= 1
	})
	l.Wait(ctx, t, 200)
	l.Stop()
	if n := l.Failed(); n != 0 {
		t.Errorf("%d of %d requests failed while a version crashed; first: %v", n, l.Total(), l.Failures()[0])
	}
	got := l.Take()
	if got["crashing"] != 0 || got["stable"] == 0 {
		t.Errorf("answers by version %v: want all from stable", got)
	}
	cv := st2.Versions[1]
	if cv.Name != "crashing" || cv.ServesTraffic || cv.Ready != 0 || cv.Message == "" {
		t.Errorf("crashing version status %+v: want no traffic, no ready replica and a message", cv)
	}
	if sv := st2.Versions[0]; !sv.ServesTraffic {
		t.Errorf("default version status %+v: want serving traffic", sv)
	}
	mf := scrape(ctx, t, hc, baseURL(ctx, t, c))
	if p := metricValue(mf, "aksml_frontend_traffic_percent", "falling", "crashing"); p != 0 {
		t.Errorf("crashing version's effective traffic %v%%, want 0", p)
	}
	if p := metricValue(mf, "aksml_frontend_traffic_percent", "falling", "stable"); p != 100 {
		t.Errorf("default version's effective traffic %v%%, want 100", p)
	}
	t.Logf("crashing version: %d requests, %d failed, %v; status %s: %s", l.Total(), l.Failed(), got, cv.State, firstLine(cv.Message))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// baseURL is the cluster's front-end address.
func baseURL(ctx context.Context, t *testing.T, c driver.Cluster) string {
	t.Helper()
	cs, err := c.Status(ctx)
	if err != nil || cs.ScoringBaseURL == "" {
		t.Fatalf("cluster status %+v %v: no scoring base URL", cs, err)
	}
	return cs.ScoringBaseURL
}

// scrape reads the front-end's Prometheus exposition.
func scrape(ctx context.Context, t *testing.T, hc *http.Client, base string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+pathMetrics, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", pathMetrics, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", pathMetrics, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want the text exposition format", pathMetrics, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not Prometheus text: %v", pathMetrics, err)
	}
	return mf
}

// metricValue returns the value (a histogram's count) of the sample of
// family name with labels service and version and the extra label pairs,
// or 0 when there is none.
func metricValue(mf map[string]*dto.MetricFamily, name, service, version string, labels ...string) float64 {
	f := mf[name]
	if f == nil {
		return 0
	}
	want := map[string]string{"service": service, "version": version}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// testEndpointMetrics checks the per-version metrics in Prometheus text at
// the front-end's metrics URI: requests by code, errors, the latency
// histogram, in-flight requests, replicas and effective traffic.
func testEndpointMetrics(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	hc := epClient(t)
	failing := Func(func(ctx context.Context, in []byte) ([]byte, error) { return nil, errors.New("model exploded") })
	st := deployAll(ctx, t, c, EndpointSpec("measured",
		EndpointVersion{Name: "a", TrafficPercent: 60},
		EndpointVersion{Name: "b", IsDefault: true, Replicas: 2},
		EndpointVersion{Name: "bad", Handler: failing},
	))["measured"]
	got := map[string]int{}
	for i := range 100 {
		r, err := post(ctx, hc, st.ScoringURI, `{}`)
		if err != nil || r.code != 200 {
			t.Fatalf("request %d: %d %v", i, r.code, err)
		}
		got[r.tag]++
	}
	for i := range 5 {
		if r, err := post(ctx, hc, st.ScoringURI, `{}`, headerVersion, "bad"); err != nil || r.code != http.StatusBadGateway {
			t.Fatalf("request %d to the failing version: %d %v, want 502", i, r.code, err)
		}
	}
	mf := scrape(ctx, t, hc, baseURL(ctx, t, c))
	for _, k := range []struct {
		metric  string
		version string
		labels  []string
		want    float64
	}{
		{"aksml_frontend_requests_total", "a", []string{"code", "200"}, float64(got["a"])},
		{"aksml_frontend_requests_total", "b", []string{"code", "200"}, float64(got["b"])},
		{"aksml_frontend_requests_total", "a", []string{"code", "200"}, 60},
		{"aksml_frontend_requests_total", "bad", []string{"code", "502"}, 5},
		{"aksml_frontend_errors_total", "bad", []string{"code", "502"}, 5},
		{"aksml_frontend_errors_total", "a", []string{"code", "502"}, 0},
		{"aksml_frontend_request_duration_seconds", "a", nil, 60},
		{"aksml_frontend_request_duration_seconds", "b", nil, 40},
		{"aksml_frontend_request_duration_seconds", "bad", nil, 5},
		{"aksml_frontend_in_flight_requests", "a", nil, 0},
		{"aksml_frontend_replicas", "b", nil, 2},
		{"aksml_frontend_ready_replicas", "b", nil, 2},
		{"aksml_frontend_traffic_percent", "a", nil, 60},
		{"aksml_frontend_traffic_percent", "b", nil, 40},
		{"aksml_frontend_traffic_percent", "bad", nil, 0},
	} {
		if v := metricValue(mf, k.metric, "measured", k.version, k.labels...); v != k.want {
			t.Errorf("%s{version=%q %v} = %v, want %v", k.metric, k.version, k.labels, v, k.want)
		}
	}
	if f := mf["aksml_frontend_request_duration_seconds"]; f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("aksml_frontend_request_duration_seconds is not a histogram: %v", f)
	}
}
