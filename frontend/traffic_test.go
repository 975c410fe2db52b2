package frontend

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aksml/aksml/compute/drivertest"
)

func TestScheduleExactness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pct       []float64
		def       int
		shares    []float64
		maxWindow float64
	}{
		{"20/80", []float64{20, 80}, 1, []float64{.2, .8}, 1},
		{"10/30 with 60 to the default", []float64{10, 30, 0}, 2, []float64{.1, .3, .6}, 1},
		{"six versions, 5..25", []float64{5, 10, 15, 20, 25, 0}, 5, []float64{.05, .1, .15, .2, .25, .25}, 2},
		{"six versions, 1..5 + 85", []float64{1, 2, 3, 4, 5, 0}, 5, []float64{.01, .02, .03, .04, .05, .85}, 2},
		{"six versions, odd", []float64{7, 11, 13, 17, 19, 0}, 5, []float64{.07, .11, .13, .17, .19, .33}, 2},
		{"thirds", []float64{33.33, 33.33, 0}, 2, []float64{.3333, .3333, .3334}, 2},
	}
	for _, tc := range tests {
		routable := make([]bool, len(tc.pct))
		for i := range routable {
			routable[i] = true
		}
		w := effectiveWeights(tc.pct, tc.def, routable)
		sched := schedule(w)
		var seq []int
		for i := 0; i < 3*len(sched); i++ {
			seq = append(seq, int(sched[i%len(sched)]))
		}
		wd, pd := drivertest.Deviations(seq, tc.shares)
		if pd >= 1 {
			t.Errorf("%s: prefix deviation %.3f, want < 1", tc.name, pd)
		}
		if wd > tc.maxWindow+1e-9 {
			t.Errorf("%s: window deviation %.3f, want ≤ %v", tc.name, wd, tc.maxWindow)
		}
		t.Logf("%s: period %d, max window deviation %.3f", tc.name, len(sched), wd)
	}
}

// split installs versions and sends n sequential requests, returning the
// version index that answered each.
func split(t *testing.T, rt *Router, base string, names []string, n int, headers ...string) []int {
	t.Helper()
	idx := map[string]int{}
	for i, nm := range names {
		idx[nm] = i
	}
	seq := make([]int, 0, n)
	for i := 0; i < n; i++ {
		got := do(t, "POST", base+"/api/v1/service/ep/score", "{}", headers...)
		if got.code != 200 {
			t.Fatalf("request %d: %d %s", i, got.code, got.body)
		}
		v, ok := idx[got.header.Get(HeaderServedBy)]
		if !ok {
			t.Fatalf("request %d served by %q", i, got.header.Get(HeaderServedBy))
		}
		if want := `"` + names[v] + `"`; got.body != want {
			t.Fatalf("request %d: served-by %s but body %s", i, names[v], got.body)
		}
		seq = append(seq, v)
	}
	return seq
}

func TestSplitThroughRouter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pct       []float64
		def       int
		shares    []float64
		maxWindow float64
	}{
		{"20/80", []float64{20, 80}, 1, []float64{.2, .8}, 1},
		{"10/30 with 60 to the default", []float64{10, 30, 0}, 2, []float64{.1, .3, .6}, 1},
		{"six versions", []float64{5, 10, 15, 20, 25, 0}, 5, []float64{.05, .1, .15, .2, .25, .25}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := New(nil)
			base := serve(t, rt, "eventloop")
			var vs []Version
			var names []string
			for i, p := range tc.pct {
				name := fmt.Sprintf("v%d", i)
				v := version(name, p, startReplica(t, name, nil))
				v.IsDefault = i == tc.def
				vs = append(vs, v)
				names = append(names, name)
			}
			mustSet(t, rt, Route{Name: "ep", Versions: vs})
			seq := split(t, rt, base, names, 400)
			wd, pd := drivertest.Deviations(seq, tc.shares)
			if pd >= 1 {
				t.Errorf("prefix deviation %.3f, want < 1", pd)
			}
			if wd > tc.maxWindow+1e-9 {
				t.Errorf("window deviation %.3f, want ≤ %v", wd, tc.maxWindow)
			}
			st, _ := rt.Stats("ep")
			for i, v := range st.Versions {
				if math.Abs(v.EffectivePercent-tc.shares[i]*100) > 1e-9 {
					t.Errorf("%s EffectivePercent %v, want %v", v.Name, v.EffectivePercent, tc.shares[i]*100)
				}
				if v.Requests != uint64(countOf(seq, i)) {
					t.Errorf("%s Requests %d, sequence has %d", v.Name, v.Requests, countOf(seq, i))
				}
			}
		})
	}
}

func countOf(seq []int, v int) int {
	n := 0
	for _, x := range seq {
		if x == v {
			n++
		}
	}
	return n
}

func TestHeaderTargeting(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	base := serve(t, rt, "nethttp")
	a, b := startReplica(t, "blue", nil), startReplica(t, "green", nil)
	blue, green := version("blue", 0, a), version("green", 0, b)
	blue.IsDefault = true
	down := Version{Name: "down", Replicas: []Replica{a.replica("x", false)}}
	mustSet(t, rt, Route{Name: "ep", Versions: []Version{blue, green, down}})
	tests := []struct {
		header string
		path   string
		code   int
		body   string
	}{
		{"", "/score", 200, `"blue"`},
		{HeaderVersion + ": green", "/score", 200, `"green"`},
		{"Aksml-Version: green", "/score", 200, `"green"`},
		{HeaderVersionAlias + ": green", "/score", 200, `"green"`},
		{"Azureml-Model-Deployment: blue", "/score", 200, `"blue"`},
		{"", "/versions/green/score", 200, `"green"`},
		{HeaderVersion + ": nope", "/score", 404, "Version nope not found in service ep"},
		{HeaderVersion + ": down", "/score", 503, "No ready replicas for service ep"},
		{"", "/versions/down/score", 503, "No ready replicas for service ep"},
	}
	for _, tc := range tests {
		var hs []string
		if tc.header != "" {
			hs = append(hs, tc.header)
		}
		for i := 0; i < 5; i++ {
			got := do(t, "POST", base+"/api/v1/service/ep"+tc.path, "{}", hs...)
			if got.code != tc.code || got.body != tc.body {
				t.Errorf("%q %s: got %d %q, want %d %q", tc.header, tc.path, got.code, got.body, tc.code, tc.body)
				break
			}
		}
	}
}

func TestStickyAssignment(t *testing.T) {
	t.Parallel()
	// The fraction of 10,000 caller keys moved by a 10 % → 20 % change.
	assign := func(pct []float64, def int) []int {
		w := effectiveWeights(pct, def, []bool{true, true, true})
		seeds := []uint64{hashString("canary"), hashString("control"), hashString("other")}
		out := make([]int, 10000)
		for i := range out {
			out[i] = rendezvous(hashBytes([]byte(fmt.Sprintf("caller-%d", i))), w, seeds)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		before, aft []float64
		wantMoved   float64
	}{
		{"two versions 10→20", []float64{10, 0, 0}, []float64{20, 0, 0}, 0.10},
		{"three versions 10→20 (30 fixed)", []float64{10, 0, 30}, []float64{20, 0, 30}, 0.10},
	} {
		before, after := assign(tc.before, 1), assign(tc.aft, 1)
		moved, toCanary := 0, 0
		for i := range before {
			if before[i] != after[i] {
				moved++
				if after[i] == 0 {
					toCanary++
				}
			}
		}
		frac := float64(moved) / 10000
		share := float64(countOf(after, 0)) / 10000
		t.Logf("%s: %.2f%% of callers moved (%d to the canary); canary share %.2f%%", tc.name, frac*100, toCanary, share*100)
		if frac < tc.wantMoved-0.02 || frac > tc.wantMoved+0.03 {
			t.Errorf("%s: %.3f of callers moved, want about %.2f", tc.name, frac, tc.wantMoved)
		}
		if math.Abs(share-tc.aft[0]/100) > 0.02 {
			t.Errorf("%s: canary share %.3f, want about %.2f", tc.name, share, tc.aft[0]/100)
		}
	}

	// Through the router: a caller stays on its version.
	rt := New(nil)
	base := serve(t, rt, "eventloop")
	canary := version("canary", 50, startReplica(t, "canary", nil))
	control := version("control", 0, startReplica(t, "control", nil))
	control.IsDefault = true
	mustSet(t, rt, Route{Name: "ep", Versions: []Version{canary, control}})
	seen := map[string]bool{}
	for c := 0; c < 20; c++ {
		key := fmt.Sprintf("user-%d", c)
		first := ""
		for i := 0; i < 5; i++ {
			got := do(t, "POST", base+"/api/v1/service/ep/score", "{}", HeaderCallerKey+": "+key)
			if first == "" {
				first = got.body
			} else if got.body != first {
				t.Fatalf("caller %s moved from %s to %s", key, first, got.body)
			}
		}
		seen[first] = true
	}
	if len(seen) != 2 {
		t.Errorf("20 callers at 50/50 all landed on %v", seen)
	}
}

func TestMirroring(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	base := serve(t, rt, "eventloop")
	live := startReplica(t, "live", nil)
	var mu sync.Mutex
	var mirroredBodies []string
	shadow := startReplica(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		mirroredBodies = append(mirroredBodies, string(b))
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // a slow mirror must not slow callers
		w.WriteHeader(500)
	})
	broken := Version{Name: "broken", MirrorPercent: 100, Replicas: []Replica{{ID: "dead", URL: closedPortURL(t), Ready: true}}, MaxConcurrentPerReplica: 4}
	main := version("main", 0, live)
	main.IsDefault = true
	sv := version("shadow", 0, shadow)
	sv.MirrorPercent = 25
	sv.MaxConcurrentPerReplica = 1000

	// Callers alternate between a route without mirrors and one with them,
	// on the same live replica, so both see the same machine noise.
	mustSet(t, rt, Route{Name: "plain", Versions: []Version{main}})
	mustSet(t, rt, Route{Name: "ep", Versions: []Version{main, sv, broken}})
	var baseDur, mirDur []time.Duration
	baseBodies, mirBodies := map[string]int{}, map[string]int{}
	for i := 0; i < 250; i++ {
		for _, name := range []string{"plain", "ep"} {
			got := do(t, "POST", base+"/api/v1/service/"+name+"/score", fmt.Sprintf(`{"i":%d}`, i))
			if got.code != 200 {
				t.Fatalf("%s request %d: %d %s", name, i, got.code, got.body)
			}
			if i < 50 {
				continue // warm-up
			}
			if name == "plain" {
				baseDur, baseBodies[got.body] = append(baseDur, got.dur), baseBodies[got.body]+1
			} else {
				mirDur, mirBodies[got.body] = append(mirDur, got.dur), mirBodies[got.body]+1
			}
		}
	}
	sort.Slice(baseDur, func(i, j int) bool { return baseDur[i] < baseDur[j] })
	sort.Slice(mirDur, func(i, j int) bool { return mirDur[i] < mirDur[j] })
	if fmt.Sprint(baseBodies) != fmt.Sprint(mirBodies) || mirBodies[`"live"`] != 200 {
		t.Errorf("responses changed with mirroring: %v vs %v", baseBodies, mirBodies)
	}
	p50b, p50m := baseDur[len(baseDur)/2], mirDur[len(mirDur)/2]
	p90b, p90m := baseDur[len(baseDur)*9/10], mirDur[len(mirDur)*9/10]
	t.Logf("caller latency without mirror p50 %v p90 %v; with 25%% to a 20 ms mirror + 100%% to a dead one: p50 %v p90 %v", p50b, p90b, p50m, p90m)
	// The mirror takes 20 ms; had the caller waited for it, p50 would grow by
	// that much. Allow noise on a shared machine.
	if p50m > p50b+5*time.Millisecond {
		t.Errorf("mirroring slowed callers: p50 %v → %v", p50b, p50m)
	}
	if err := rt.Shutdown(t.Context()); err != nil { // waits for mirrors in flight
		t.Fatal(err)
	}
	st, _ := rt.Stats("ep")
	shadowSt, brokenSt := st.Versions[1], st.Versions[2]
	if shadowSt.Mirrored+shadowSt.MirrorDropped+shadowSt.MirrorFailed != 62 || shadowSt.Mirrored < 55 {
		t.Errorf("shadow got %d mirrored (%d dropped, %d failed), want 62 (25%% of 250)", shadowSt.Mirrored, shadowSt.MirrorDropped, shadowSt.MirrorFailed)
	}
	if brokenSt.Mirrored != 0 || brokenSt.MirrorFailed+brokenSt.MirrorDropped != 250 {
		t.Errorf("broken mirror: %+v", brokenSt)
	}
	if shadowSt.Requests != 0 || st.Versions[0].Requests != 250 {
		t.Errorf("live counters: main %d shadow %d", st.Versions[0].Requests, shadowSt.Requests)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range mirroredBodies {
		if !strings.HasPrefix(b, `{"i":`) {
			t.Errorf("mirror got body %q", b)
		}
	}
}

func TestReadinessFallback(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	base := serve(t, rt, "nethttp")
	a, b := startReplica(t, "stable", nil), startReplica(t, "canary", nil)
	stable := version("stable", 0, a)
	stable.IsDefault = true
	canary := Version{Name: "canary", TrafficPercent: 50, MaxConcurrentPerReplica: 8, Replicas: []Replica{b.replica("c1", false)}}
	mustSet(t, rt, Route{Name: "ep", Versions: []Version{stable, canary}})

	// Not ready: every request goes to the default, and Stats says so.
	for i := 0; i < 20; i++ {
		if got := do(t, "POST", base+"/api/v1/service/ep/score", "{}"); got.code != 200 || got.body != `"stable"` {
			t.Fatalf("request %d: %d %s", i, got.code, got.body)
		}
	}
	st, _ := rt.Stats("ep")
	if !st.Fallback || st.Versions[1].Routable || st.Versions[1].EffectivePercent != 0 || st.Versions[0].EffectivePercent != 100 {
		t.Errorf("stats while canary not ready: %+v", st)
	}

	// Ready: the canary gets exactly half.
	canary.Replicas[0].Ready = true
	mustSet(t, rt, Route{Name: "ep", Versions: []Version{stable, canary}})
	seq := split(t, rt, base, []string{"stable", "canary"}, 20)
	if countOf(seq, 1) != 10 {
		t.Errorf("canary got %d of 20", countOf(seq, 1))
	}
	st, _ = rt.Stats("ep")
	if st.Fallback || st.Versions[1].EffectivePercent != 50 {
		t.Errorf("stats with canary ready: %+v", st)
	}

	// The canary's replicas all crash before the backend notices: callers
	// see no error, the traffic goes to the default.
	b.Close()
	for i := 0; i < 20; i++ {
		if got := do(t, "POST", base+"/api/v1/service/ep/score", "{}"); got.code != 200 || got.body != `"stable"` {
			t.Fatalf("after crash, request %d: %d %s", i, got.code, got.body)
		}
	}
	l, _ := rt.Load("ep")
	if l[1].ReadyReplicas != 0 || l[1].Replicas != 1 {
		t.Errorf("load after crash: %+v", l)
	}

	// The default has no ready replica: its share goes to the others in
	// proportion; a 0 % version never gets live traffic.
	c := startReplica(t, "canary2", nil)
	canary.Replicas = []Replica{c.replica("c2", true)}
	stable.Replicas[0].Ready = false
	zero := version("zero", 0, startReplica(t, "zero", nil))
	mustSet(t, rt, Route{Name: "ep", Versions: []Version{stable, canary, zero}})
	for i := 0; i < 10; i++ {
		if got := do(t, "POST", base+"/api/v1/service/ep/score", "{}"); got.code != 200 || got.body != `"canary2"` {
			t.Fatalf("default down, request %d: %d %s", i, got.code, got.body)
		}
	}
	canary.Replicas[0].Ready = false
	mustSet(t, rt, Route{Name: "ep", Versions: []Version{stable, canary, zero}})
	if got := do(t, "POST", base+"/api/v1/service/ep/score", "{}"); got.code != 503 {
		t.Errorf("only a 0%% version ready: got %d %s, want 503", got.code, got.body)
	}
	st, _ = rt.Stats("ep")
	if st.Ready {
		t.Errorf("Ready with no routable version")
	}
}

func TestQueueing(t *testing.T) {
	t.Parallel()
	const work = 60 * time.Millisecond
	var running, peak atomic.Int32
	hold := make(chan struct{})
	rep := startReplica(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if r.URL.Query().Has("hold") {
			<-hold
		} else {
			time.Sleep(work)
		}
		running.Add(-1)
		io.WriteString(w, "done")
	})
	rt := New(nil)
	base := serve(t, rt, "eventloop")
	v := Version{Name: "v", MaxConcurrentPerReplica: 1, MaxQueueWait: 5 * time.Second, Replicas: []Replica{rep.replica("r", true)}}
	mustSet(t, rt, Route{Name: "q", Versions: []Version{v}})

	// Three callers at once on one slot: they are served one after another,
	// the k-th after about k×60 ms, never two on the replica at once.
	var wg sync.WaitGroup
	durs := make([]time.Duration, 3)
	maxInFlight := atomic.Int32{}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			l, _ := rt.Load("q")
			if n := int32(l[0].InFlight); n > maxInFlight.Load() {
				maxInFlight.Store(n)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := range durs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := do(t, "POST", base+"/api/v1/service/q/score", "{}")
			if got.code != 200 {
				t.Errorf("request %d: %d %s", i, got.code, got.body)
			}
			durs[i] = got.dur
		}()
	}
	wg.Wait()
	close(stop)
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	t.Logf("served after %v; at most %d on the replica; in flight (queued included) peaked at %d", durs, peak.Load(), maxInFlight.Load())
	for k, d := range durs {
		if d < time.Duration(k+1)*work-5*time.Millisecond {
			t.Errorf("served #%d after %v, before %v: requests overlapped on one slot", k, d, time.Duration(k+1)*work)
		}
	}
	if peak.Load() != 1 {
		t.Errorf("%d requests ran on the replica at once, want 1", peak.Load())
	}
	if maxInFlight.Load() < 2 {
		t.Errorf("in flight peaked at %d, want ≥ 2 (queued requests count)", maxInFlight.Load())
	}

	// A slot held: the next caller waits the 100 ms queue time, then 503.
	v.MaxQueueWait = 100 * time.Millisecond
	mustSet(t, rt, Route{Name: "q", Versions: []Version{v}})
	wg.Add(1)
	go func() {
		defer wg.Done()
		if got := do(t, "POST", base+"/api/v1/service/q/score?hold", "{}"); got.code != 200 {
			t.Errorf("held request: %d", got.code)
		}
	}()
	waitFor(t, "the held request on the replica", func() bool { return running.Load() == 1 })
	got := do(t, "POST", base+"/api/v1/service/q/score", "{}")
	close(hold)
	wg.Wait()
	t.Logf("overloaded answer after %v", got.dur)
	if got.code != 503 || got.body != "Too many requests for service q (overloaded)" {
		t.Errorf("overloaded: %d %q", got.code, got.body)
	}
	if got.dur < 100*time.Millisecond {
		t.Errorf("503 after %v, before the 100 ms queue wait", got.dur)
	}
	if rep.hits.Load() != 4 {
		t.Errorf("replica saw %d requests, want 4", rep.hits.Load())
	}
}

func TestReplicaUpdateKeepsInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := startReplica(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		<-release
		io.WriteString(w, "slow")
	})
	fast := startReplica(t, "fast", nil)
	rt := New(nil)
	base := serve(t, rt, "eventloop")
	v := Version{Name: "v", MaxConcurrentPerReplica: 1, MaxQueueWait: 5 * time.Second, Replicas: []Replica{slow.replica("s", true)}}
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{v}})
	var wg sync.WaitGroup
	codes := make([]string, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := do(t, "POST", base+"/api/v1/service/svc/score", "{}")
			codes[i] = fmt.Sprint(got.code, got.body)
		}()
	}
	waitFor(t, "one running and one queued", func() bool {
		l, _ := rt.Load("svc")
		return l[0].InFlight == 2 && l[0].Queued == 1
	})
	// A new replica arrives: the queued request gets it at once, and the
	// slow one's slot is still accounted for.
	v.Replicas = append(v.Replicas, fast.replica("f", true))
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{v}})
	waitFor(t, "the queued request served by the new replica", func() bool {
		l, _ := rt.Load("svc")
		return fast.hits.Load() == 1 && l[0].InFlight == 1
	})
	l, _ := rt.Load("svc")
	if l[0].InFlight != 1 || l[0].Replicas != 2 {
		t.Errorf("load after update: %+v", l[0])
	}
	close(release)
	wg.Wait()
	sort.Strings(codes)
	if codes[0] != `200"fast"` || codes[1] != "200slow" {
		t.Errorf("responses %v", codes)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rt := New(nil)
			base := serve(t, rt, engine)
			ok := startReplica(t, "ok", nil)
			bad := startReplica(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
			a := version("blue", 50, ok)
			a.IsDefault = true
			b := version("green", 50, bad)
			mustSet(t, rt, Route{Name: "ep", Versions: []Version{a, b}})
			for i := 0; i < 10; i++ {
				do(t, "POST", base+"/api/v1/service/ep/score", "{}")
			}
			got := do(t, "GET", base+"/metrics", "")
			for _, want := range []string{
				`aksml_frontend_requests_total{code="200",service="ep",version="blue"} 5`,
				`aksml_frontend_requests_total{code="502",service="ep",version="green"} 5`,
				`aksml_frontend_errors_total{code="502",service="ep",version="green"} 5`,
				`aksml_frontend_request_duration_seconds_count{service="ep",version="blue"} 5`,
				`aksml_frontend_request_duration_seconds_bucket{service="ep",version="blue",le="+Inf"} 5`,
				`aksml_frontend_in_flight_requests{service="ep",version="blue"} 0`,
				`aksml_frontend_ready_replicas{service="ep",version="green"} 1`,
				`aksml_frontend_traffic_percent{service="ep",version="green"} 50`,
			} {
				if !strings.Contains(got.body, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			// Prometheus' own parser reads the whole exposition.
			parser := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := parser.TextToMetricFamilies(strings.NewReader(got.body))
			if err != nil {
				t.Fatalf("Prometheus' parser refuses /metrics: %v\n%s", err, got.body)
			}
			if h := fams["aksml_frontend_request_duration_seconds"]; h == nil || len(h.Metric) != 2 || h.Metric[0].Histogram.GetSampleCount() != 5 {
				t.Errorf("latency histogram: %v", h)
			}
			st, _ := rt.Stats("ep")
			if st.Versions[1].Errors != 5 || st.Versions[1].Responses[502] != 5 || st.Versions[0].LatencySum <= 0 {
				t.Errorf("stats: %+v", st.Versions)
			}
		})
	}
}

// TestWaitForReadyReplica: a scoring request for a route with no ready
// replica waits up to the queue wait for one (a service starting, or a
// front-end whose watch is a moment behind the cluster) before 503.
func TestWaitForReadyReplica(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rep := startReplica(t, "r", nil)
			rt := New(nil)
			base := serve(t, rt, engine)
			v := Version{Name: "v", MaxQueueWait: 5 * time.Second, Replicas: []Replica{rep.replica("r", false)}}
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{v}})
			got := make(chan result, 1)
			go func() { got <- do(t, "POST", base+"/api/v1/service/svc/score", "{}") }()
			// The request is waiting when nothing has answered it yet and
			// the replica has not been hit.
			select {
			case r := <-got:
				t.Fatalf("answered %d %q before any replica was ready", r.code, r.body)
			case <-time.After(50 * time.Millisecond):
			}
			v.Replicas[0].Ready = true
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{v}})
			if r := <-got; r.code != 200 || r.body != `"r"` {
				t.Errorf("after the replica became ready: %d %q", r.code, r.body)
			}

			// Nothing becomes ready: 503 after the queue wait.
			v.Replicas[0].Ready = false
			v.MaxQueueWait = 100 * time.Millisecond
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{v}})
			r := do(t, "POST", base+"/api/v1/service/svc/score", "{}")
			if r.code != 503 || r.body != "No ready replicas for service svc" || r.dur < 100*time.Millisecond {
				t.Errorf("no ready replica: %d %q after %v, want 503 after the 100 ms queue wait", r.code, r.body, r.dur)
			}
		})
	}
}

// TestExpositionEscapes: label values are escaped as the text format
// requires, so Prometheus' parser reads back what was written.
func TestExpositionEscapes(t *testing.T) {
	t.Parallel()
	w := &expoWriter{name: "m"}
	odd := "a\\b\"c\nd"
	w.sample("", 1.5, "service", odd)
	w.sample("", math.Inf(1), "service", "x")
	text := "# TYPE m gauge\n" + string(w.b)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	m := fams["m"].Metric
	if len(m) != 2 || m[0].Label[0].GetValue() != odd || m[0].Gauge.GetValue() != 1.5 || !math.IsInf(m[1].Gauge.GetValue(), 1) {
		t.Errorf("read back %v from\n%s", m, text)
	}
}
