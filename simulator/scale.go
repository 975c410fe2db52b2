package simulator

import (
	"fmt"
	"time"

	"github.com/aksml/aksml/autoscale"
	"github.com/aksml/aksml/compute/driver"
)

// versionScaler holds one version's replica policy: a fixed count, or the
// azureml-fe autoscaler fed with the front-end's in-flight figures, sampled
// on every pass of the control loop and decided every refresh period, with
// scale-up also checked on every pass (Autoscaler.ScaleUp).
type versionScaler struct {
	scale   driver.Scale
	desired int
	auto    *autoscale.Autoscaler
	next    time.Time
}

// newVersionScaler returns the scaler for a (possibly changed) policy,
// keeping the current count and the autoscaler's history when autoscaling
// stays on.
func newVersionScaler(old *versionScaler, sc driver.Scale, maxConcurrent int, now time.Time) *versionScaler {
	vs := &versionScaler{scale: sc}
	if !sc.Autoscale {
		vs.desired = max(sc.Replicas, 1)
		return vs
	}
	settings := autoscale.Settings{
		Min:                     max(sc.Min, 1),
		Max:                     max(sc.Max, sc.Min, 1),
		TargetUtilization:       sc.TargetUtilization,
		RefreshPeriod:           sc.RefreshPeriod,
		MaxConcurrentPerReplica: max(maxConcurrent, 1),
	}
	if old != nil && old.auto != nil {
		if err := old.auto.SetSettings(settings); err == nil {
			vs.auto = old.auto
			vs.desired = min(max(old.desired, settings.Min), settings.Max)
			vs.next = old.next
			return vs
		}
	}
	a, err := autoscale.New(settings)
	if err != nil {
		// The portable layer validated the policy; fall back to its minimum.
		vs.desired = settings.Min
		return vs
	}
	vs.auto = a
	vs.desired = settings.Min
	vs.next = now.Add(a.Settings().RefreshPeriod)
	return vs
}

// decide records the version's load and, once per refresh period, returns
// the autoscaler's count. Caller holds c.mu.
func (vs *versionScaler) decide(c *Cluster, s *service, v *version, now time.Time) (int, bool) {
	if vs.auto == nil {
		return 0, false
	}
	loads, err := c.router.Load(s.name)
	if err != nil {
		return 0, false
	}
	for _, l := range loads {
		if l.Version == v.name {
			vs.auto.Record(autoscale.Observation{Time: now, InFlight: float64(l.InFlight)})
		}
	}
	if now.Before(vs.next) {
		// Scale-up is eager: between refresh periods every pass checks the
		// last period's load, so a step in load gets replicas within a pass
		// (Options.Tick), before queued requests pass max_request_wait_time;
		// scale-down waits for the period.
		n, up := vs.auto.ScaleUp(now, vs.desired)
		if !up {
			return 0, false
		}
		c.opts.Logger.Info("autoscale", "service", s.name, "version", v.name, "decision", fmt.Sprintf("eager scale up: %d → %d replicas", vs.desired, n))
		vs.desired = n
		return n, true
	}
	vs.next = now.Add(vs.auto.Settings().RefreshPeriod)
	d := vs.auto.Scale(now, vs.desired)
	if d.Desired != vs.desired {
		c.opts.Logger.Info("autoscale", "service", s.name, "version", v.name, "decision", d.String())
	}
	vs.desired = d.Desired
	return d.Desired, true
}
