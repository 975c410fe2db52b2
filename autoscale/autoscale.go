package autoscale

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aksml/aksml/errcode"
)

// Defaults for Settings fields left zero (the AksWebservice defaults).
const (
	DefaultMin                     = 1
	DefaultMax                     = 10
	DefaultTargetUtilization       = 70
	DefaultRefreshPeriod           = time.Second
	DefaultMaxConcurrentPerReplica = 1
	DefaultScaleDownDelay          = time.Minute
)

// Settings are a version's autoscaling parameters. Zero fields take the
// defaults above.
type Settings struct {
	// Min and Max bound the replica count (autoscale_min_replicas,
	// autoscale_max_replicas). Min == Max pins the count.
	Min, Max int
	// TargetUtilization is the utilization, in percent, the autoscaler
	// keeps the version under (autoscale_target_utilization).
	TargetUtilization float64
	// RefreshPeriod is how often the caller samples load and asks for a
	// decision (autoscale_refresh_seconds); the load of a decision is the
	// average of the observations in the last period.
	RefreshPeriod time.Duration
	// MaxConcurrentPerReplica is replica_max_concurrent_requests.
	MaxConcurrentPerReplica int
	// ScaleDownDelay is how long the load must stay low before the count
	// falls.
	ScaleDownDelay time.Duration
}

// WithDefaults returns s with zero fields set to the defaults.
func (s Settings) WithDefaults() Settings {
	if s.Min == 0 {
		s.Min = DefaultMin
	}
	if s.Max == 0 {
		s.Max = max(DefaultMax, s.Min)
	}
	if s.TargetUtilization == 0 {
		s.TargetUtilization = DefaultTargetUtilization
	}
	if s.RefreshPeriod == 0 {
		s.RefreshPeriod = DefaultRefreshPeriod
	}
	if s.MaxConcurrentPerReplica == 0 {
		s.MaxConcurrentPerReplica = DefaultMaxConcurrentPerReplica
	}
	if s.ScaleDownDelay == 0 {
		s.ScaleDownDelay = DefaultScaleDownDelay
	}
	return s
}

// Validate reports every broken rule of s (after defaults), each an
// errcode.InvalidArgument naming the deploy-config field.
func (s Settings) Validate() error {
	s = s.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, format, args...))
	}
	if s.Min < 1 {
		bad("autoscale_min_replicas %d is below 1", s.Min)
	}
	if s.Max < 1 {
		bad("autoscale_max_replicas %d is below 1", s.Max)
	}
	if s.Min > s.Max {
		bad("autoscale_min_replicas %d is above autoscale_max_replicas %d", s.Min, s.Max)
	}
	if !(s.TargetUtilization > 0) || math.IsInf(s.TargetUtilization, 0) {
		bad("autoscale_target_utilization %v must be a positive number", s.TargetUtilization)
	}
	if s.RefreshPeriod < 0 {
		bad("autoscale_refresh_seconds %v is negative", s.RefreshPeriod.Seconds())
	}
	if s.MaxConcurrentPerReplica < 1 {
		bad("replica_max_concurrent_requests %d is below 1", s.MaxConcurrentPerReplica)
	}
	if s.ScaleDownDelay < 0 {
		bad("scale-down delay %v is negative", s.ScaleDownDelay)
	}
	return errors.Join(errs...)
}

// Desired is the replica count that keeps load (requests in flight, queued
// ones included) at the target utilization: ceil(load ÷ (max concurrent ×
// target)), within [Min, Max]. s must be valid.
func Desired(s Settings, load float64) int {
	s = s.WithDefaults()
	if load < 0 || math.IsNaN(load) {
		load = 0
	}
	per := float64(s.MaxConcurrentPerReplica) * s.TargetUtilization / 100
	// Round away float noise before ceil: 200/0.7 must not become 285.99….
	n := math.Ceil(math.Round(load/per*1e9) / 1e9)
	if n > float64(s.Max) {
		return s.Max
	}
	return max(int(n), s.Min)
}

// ReplicasForRate is the documented sizing formula:
// ceil(rps × requestTime ÷ (targetUtilization/100) ÷ maxConcurrent), with
// targetUtilization in percent. ReplicasForRate(20, 10*time.Second, 70, 1)
// is 286.
func ReplicasForRate(rps float64, requestTime time.Duration, targetUtilization float64, maxConcurrent int) int {
	if maxConcurrent < 1 {
		maxConcurrent = 1
	}
	if targetUtilization <= 0 {
		targetUtilization = DefaultTargetUtilization
	}
	x := rps * requestTime.Seconds() / (targetUtilization / 100) / float64(maxConcurrent)
	return int(math.Ceil(math.Round(x*1e9) / 1e9))
}

// Observation is one sample of a version's load.
type Observation struct {
	Time time.Time
	// InFlight is the requests in flight on the version, queued included
	// (frontend.VersionLoad.InFlight).
	InFlight float64
}

// Decision is the result of Scale.
type Decision struct {
	// Desired is the replica count the version should have now.
	Desired int
	// Current is the count the decision started from.
	Current int
	// Load is the average in-flight requests over the last refresh period.
	Load float64
	// Utilization is Load ÷ (Current × max concurrent), in percent.
	Utilization float64
	// Reason says why, for logs and events: "scale up", "scale down",
	// "hold", "hold: load low for less than the scale-down delay",
	// "clamp to min", "clamp to max".
	Reason string
}

// Autoscaler holds one version's recent observations and decisions. It is
// not safe for concurrent use; a control loop owns it.
type Autoscaler struct {
	s     Settings
	obs   []Observation
	wants []point // the load-based count at each Scale call
	first time.Time
}

type point struct {
	t    time.Time
	want int
}

// New returns an Autoscaler for s (zero fields defaulted), or the
// validation error.
func New(s Settings) (*Autoscaler, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &Autoscaler{s: s.WithDefaults()}, nil
}

// Settings returns the settings in force, defaults filled in.
func (a *Autoscaler) Settings() Settings { return a.s }

// SetSettings changes the settings (after an update of the deploy config);
// the history is kept.
func (a *Autoscaler) SetSettings(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	a.s = s.WithDefaults()
	return nil
}

// Record adds an observation. Observations may come at any rate; those
// older than the refresh period are dropped at the next Scale.
func (a *Autoscaler) Record(o Observation) {
	a.obs = append(a.obs, o)
}

// load is the average in-flight over (now − RefreshPeriod, now], or the
// latest earlier observation when the period has none.
func (a *Autoscaler) load(now time.Time) float64 {
	from := now.Add(-a.s.RefreshPeriod)
	sum, n := 0.0, 0
	var last *Observation
	for i := range a.obs {
		o := &a.obs[i]
		if o.Time.After(now) {
			continue
		}
		if o.Time.After(from) {
			sum += o.InFlight
			n++
		}
		if last == nil || !o.Time.Before(last.Time) {
			last = o
		}
	}
	if n > 0 {
		return sum / float64(n)
	}
	if last != nil {
		return last.InFlight
	}
	return 0
}

// Scale returns the decision at now for a version that has current replicas.
//   - Above the target, Desired is the load-based count at once.
//   - Below, Desired is the highest load-based count of the last
//     ScaleDownDelay (so it falls only once the load has stayed low that
//     long, and not before the autoscaler has watched for that long).
//   - Desired is always within [Min, Max].
func (a *Autoscaler) Scale(now time.Time, current int) Decision {
	s := a.s
	if a.first.IsZero() {
		a.first = now
	}
	// Forget what no decision needs any more.
	keep := a.obs[:0]
	for _, o := range a.obs {
		if o.Time.After(now.Add(-s.RefreshPeriod)) {
			keep = append(keep, o)
		}
	}
	if len(keep) == 0 && len(a.obs) > 0 {
		keep = append(keep, a.obs[len(a.obs)-1]) // the latest stands for the period
	}
	a.obs = keep

	load := a.load(now)
	want := Desired(s, load)
	a.wants = append(a.wants, point{now, want})
	cut := 0
	for cut < len(a.wants) && !a.wants[cut].t.After(now.Add(-s.ScaleDownDelay)) {
		cut++
	}
	a.wants = a.wants[cut:]

	d := Decision{Current: current, Load: load}
	if current > 0 {
		d.Utilization = load / float64(current*s.MaxConcurrentPerReplica) * 100
	} else if load > 0 {
		d.Utilization = math.Inf(1)
	}
	switch {
	case current < s.Min:
		d.Desired, d.Reason = max(want, s.Min), "clamp to min"
	case current > s.Max:
		d.Desired, d.Reason = s.Max, "clamp to max"
	case want > current:
		d.Desired, d.Reason = want, "scale up"
	case want == current:
		d.Desired, d.Reason = current, "hold"
	default: // want < current
		highest := want
		for _, p := range a.wants {
			highest = max(highest, p.want)
		}
		if now.Sub(a.first) < s.ScaleDownDelay {
			d.Desired, d.Reason = current, "hold: load low for less than the scale-down delay"
		} else if highest < current {
			d.Desired, d.Reason = highest, "scale down"
		} else {
			d.Desired, d.Reason = current, "hold: load low for less than the scale-down delay"
		}
	}
	return d
}

// ScaleUp is the eager check a control loop may make between refresh
// periods: the count the load of the last refresh period calls for (as
// Scale computes it), and true, when that is above current (and current is
// within [Min, Max]); 0 and false otherwise. It records nothing, so checking
// on every pass of a control loop costs a pass over the recorded
// observations and leaves Scale's decisions as they were. A step in load is
// met within a pass instead of at the next period boundary, when requests
// queued behind too few replicas may already have waited longer than
// max_request_wait_time; scale-down still waits for Scale.
func (a *Autoscaler) ScaleUp(now time.Time, current int) (int, bool) {
	if current < a.s.Min || current >= a.s.Max {
		return 0, false
	}
	want := Desired(a.s, a.load(now))
	if want <= current {
		return 0, false
	}
	return want, true
}

// String formats a decision for logs.
func (d Decision) String() string {
	return fmt.Sprintf("%s: %d → %d replicas (load %.2f, utilization %.0f%%)", d.Reason, d.Current, d.Desired, d.Load, d.Utilization)
}
