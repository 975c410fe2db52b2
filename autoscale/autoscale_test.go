package autoscale

import (
	"errors"
	"strings"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/aksml/aksml/errcode"
)

func TestReplicasForRateWorkedExample(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rps     float64
		reqTime time.Duration
		target  float64
		maxConc int
		want    int
	}{
		{20, 10 * time.Second, 70, 1, 286}, // reference §3
		{20, 10 * time.Second, 70, 2, 143},
		{10, 100 * time.Millisecond, 70, 1, 2},
		{7, 100 * time.Millisecond, 70, 1, 1}, // exactly 0.7 busy → 1 replica at 70 %
		{0, time.Second, 70, 1, 0},
	}
	for _, tc := range tests {
		if got := ReplicasForRate(tc.rps, tc.reqTime, tc.target, tc.maxConc); got != tc.want {
			t.Errorf("ReplicasForRate(%v, %v, %v, %d) = %d, want %d", tc.rps, tc.reqTime, tc.target, tc.maxConc, got, tc.want)
		}
	}
	// The same through the autoscaler: 200 requests in flight (20 rps × 10 s).
	s := Settings{Min: 1, Max: 1000, TargetUtilization: 70, MaxConcurrentPerReplica: 1}
	if got := Desired(s, 200); got != 286 {
		t.Errorf("Desired(load 200) = %d, want 286", got)
	}
	a, _ := New(s)
	now := time.Unix(0, 0)
	a.Record(Observation{now, 200})
	if d := a.Scale(now, 1); d.Desired != 286 || d.Reason != "scale up" {
		t.Errorf("Scale = %v, want scale up to 286", d)
	}
}

func TestDesired(t *testing.T) {
	t.Parallel()
	s := Settings{Min: 2, Max: 8, TargetUtilization: 50, MaxConcurrentPerReplica: 2}
	for _, tc := range []struct {
		load float64
		want int
	}{{0, 2}, {1, 2}, {2, 2}, {3, 3}, {7.9, 8}, {100, 8}, {-1, 2}} {
		if got := Desired(s, tc.load); got != tc.want {
			t.Errorf("Desired(%v) = %d, want %d", tc.load, got, tc.want)
		}
	}
}

// step is one tick of a scripted scenario: at offset at, the observed
// in-flight is load; the version has the replicas the previous decision
// asked for.
type step struct {
	at     time.Duration
	load   float64
	want   int
	reason string
}

func run(t *testing.T, s Settings, start int, steps []step) {
	t.Helper()
	clk := testclock.NewFakeClock(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	t0 := clk.Now()
	a, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	current := start
	for _, st := range steps {
		clk.SetTime(t0.Add(st.at))
		a.Record(Observation{Time: clk.Now(), InFlight: st.load})
		d := a.Scale(clk.Now(), current)
		if d.Desired != st.want || (st.reason != "" && !strings.HasPrefix(d.Reason, st.reason)) {
			t.Fatalf("at %v (load %v, %d replicas): %v; want %d (%s)", st.at, st.load, current, d, st.want, st.reason)
		}
		current = d.Desired
	}
}

func TestScaleUpEagerDownConservative(t *testing.T) {
	t.Parallel()
	s := Settings{Min: 1, Max: 10, TargetUtilization: 70, RefreshPeriod: time.Second, MaxConcurrentPerReplica: 1, ScaleDownDelay: time.Minute}
	sec := time.Second
	steps := []step{
		{0, 0, 1, "hold"},
		{1 * sec, 0.5, 1, "hold"},   // 50 % < 70 %
		{2 * sec, 5, 8, "scale up"}, // 500 % → ceil(5/0.7) = 8 at once
		{3 * sec, 5, 8, "hold"},
		{4 * sec, 20, 10, "scale up"}, // capped at max
		{5 * sec, 20, 10, "hold"},
		// Load falls at 10 s; the last high decision was at 9 s.
		{9 * sec, 20, 10, "hold"},
		{10 * sec, 1, 10, "hold: load low"},
		{30 * sec, 1, 10, "hold: load low"},
		{68 * sec, 1, 10, "hold: load low"},
		{69 * sec, 1, 2, "scale down"}, // 60 s after the last high want (9 s)
		{70 * sec, 1, 2, "hold"},
		// A spike during a low spell scales up at once and restarts the delay.
		{80 * sec, 3, 5, "scale up"},
		{81 * sec, 0, 5, "hold: load low"},
		{139 * sec, 0, 5, "hold: load low"},
		{140 * sec, 0, 1, "scale down"}, // 60 s after the spike
	}
	run(t, s, 1, steps)
}

func TestScaleDownNeedsAFullWindow(t *testing.T) {
	t.Parallel()
	// Starting with more replicas than the load needs: nothing happens until
	// the autoscaler has watched the load for the whole delay.
	s := Settings{Min: 1, Max: 10, ScaleDownDelay: 30 * time.Second}
	run(t, s, 6, []step{
		{0, 0, 6, "hold: load low"},
		{29 * time.Second, 0, 6, "hold: load low"},
		{30 * time.Second, 0, 1, "scale down"},
	})
}

func TestAverageOverRefreshPeriod(t *testing.T) {
	t.Parallel()
	s := Settings{Min: 1, Max: 100, TargetUtilization: 100, RefreshPeriod: 2 * time.Second, MaxConcurrentPerReplica: 1}
	a, _ := New(s)
	t0 := time.Unix(1000, 0)
	for i, l := range []float64{100, 2, 4, 6} { // the first falls out of the period
		a.Record(Observation{t0.Add(time.Duration(i) * 500 * time.Millisecond), l})
	}
	d := a.Scale(t0.Add(2*time.Second), 1)
	if d.Load != 4 || d.Desired != 4 || d.Utilization != 400 {
		t.Errorf("decision %v, want load 4 → 4 replicas at 400%%", d)
	}
	// No observation in the period: the latest one stands.
	d = a.Scale(t0.Add(10*time.Second), 4)
	if d.Load != 6 {
		t.Errorf("load with a stale sample: %v", d.Load)
	}
}

func TestClampAndPinned(t *testing.T) {
	t.Parallel()
	run(t, Settings{Min: 3, Max: 5}, 1, []step{{0, 0, 3, "clamp to min"}, {time.Second, 0, 3, "hold"}})
	run(t, Settings{Min: 3, Max: 5}, 9, []step{{0, 0, 5, "clamp to max"}})
	run(t, Settings{Min: 4, Max: 4}, 4, []step{{0, 50, 4, "hold"}, {time.Hour, 0, 4, "hold"}})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	err := Settings{Min: 5, Max: 2, TargetUtilization: -1, MaxConcurrentPerReplica: -3, RefreshPeriod: -time.Second}.Validate()
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Fatalf("Validate: %v", err)
	}
	for _, want := range []string{"autoscale_min_replicas 5 is above autoscale_max_replicas 2", "autoscale_target_utilization -1",
		"replica_max_concurrent_requests -3", "autoscale_refresh_seconds -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := New(Settings{Min: -1}); err == nil {
		t.Error("New accepted min -1")
	}
	if err := (Settings{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	got := Settings{}.WithDefaults()
	if got.Min != 1 || got.Max != 10 || got.TargetUtilization != 70 || got.RefreshPeriod != time.Second || got.ScaleDownDelay != time.Minute || got.MaxConcurrentPerReplica != 1 {
		t.Errorf("defaults: %+v", got)
	}
	a, _ := New(Settings{})
	if err := a.SetSettings(Settings{Min: 2, Max: 1}); err == nil {
		t.Error("SetSettings accepted min > max")
	}
	if err := a.SetSettings(Settings{Min: 2, Max: 3}); err != nil || a.Settings().Min != 2 {
		t.Errorf("SetSettings: %v %+v", err, a.Settings())
	}
}

// ScaleUp answers between periods with the count the last period's load
// calls for when it is above the current one, and changes nothing that
// Scale decides.
func TestScaleUpBetweenPeriods(t *testing.T) {
	t.Parallel()
	s := Settings{Min: 1, Max: 20, TargetUtilization: 70, MaxConcurrentPerReplica: 1, RefreshPeriod: time.Second}
	a, _ := New(s)
	b, _ := New(s)
	t0 := time.Unix(100, 0)
	for i := range 20 { // a second at 0.1 in flight, sampled every 50 ms
		o := Observation{Time: t0.Add(time.Duration(i) * 50 * time.Millisecond), InFlight: 0.1}
		a.Record(o)
		b.Record(o)
	}
	now := t0.Add(950 * time.Millisecond)
	if n, ok := a.ScaleUp(now, 1); ok {
		t.Fatalf("ScaleUp at low load = %d, want none", n)
	}
	// The step: 15 then 30 requests in flight in the next two samples.
	for i, inflight := range []float64{15, 30} {
		o := Observation{Time: now.Add(time.Duration(i+1) * 50 * time.Millisecond), InFlight: inflight}
		a.Record(o)
		b.Record(o)
	}
	now = now.Add(100 * time.Millisecond)
	// The last second's average: (18 × 0.1 + 15 + 30) / 20 = 2.34 → ceil(2.34 / 0.7) = 4.
	if n, ok := a.ScaleUp(now, 1); !ok || n != 4 {
		t.Errorf("ScaleUp after the step = %d, %v; want 4, true", n, ok)
	}
	if n, ok := a.ScaleUp(now, 4); ok {
		t.Errorf("ScaleUp at the count it asked for = %d, want none", n)
	}
	if n, ok := a.ScaleUp(now, 20); ok {
		t.Errorf("ScaleUp at the maximum = %d, want none", n)
	}
	// Scale decides the same with or without ScaleUp calls before it.
	if da, db := a.Scale(now, 4), b.Scale(now, 4); da != db {
		t.Errorf("Scale after ScaleUp calls %v, without %v", da, db)
	}
}
