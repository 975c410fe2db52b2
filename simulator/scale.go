package simulator

import (
	"time"

	"github.com/aksml/aksml/autoscale"
	"github.com/aksml/aksml/compute/driver"
)

// versionScaler holds one version's replica policy: a fixed count, or the
// azureml-fe autoscaler fed with the front-end's in-flight figures.
type versionScaler struct {
	scale   driver.Scale
	desired int
	auto    *autoscale.Autoscaler
	next    time.Time
}

// newVersionScaler returns the scaler for a (possibly changed) policy,
// keeping the current count and the autoscaler's history when only the
// policy's numbers moved.
func newVersionScaler(old *versionScaler, sc driver.Scale, maxConcurrent int, now time.Time) *versionScaler {
	vs := &versionScaler{scale: sc}
	if !sc.Autoscale {
		vs.desired = max(sc.Replicas, 1)
		return vs
	}
	settings := autoscale.Settings{
		MinReplicas:             max(sc.Min, 1),
		MaxReplicas:             max(sc.Max, sc.Min, 1),
		TargetUtilization:       sc.TargetUtilization,
		RefreshPeriod:           sc.RefreshPeriod,
		MaxConcurrentPerReplica: max(maxConcurrent, 1),
	}
	start := settings.MinReplicas
	if old != nil && old.scale.Autoscale && old.auto != nil {
		start = min(max(old.desired, settings.MinReplicas), settings.MaxReplicas)
	}
	vs.auto = autoscale.New(settings, start, now)
	vs.desired = start
	vs.next = now.Add(settings.RefreshPeriod)
	return vs
}

// decide returns the version's new desired count when the autoscaler's
// refresh period has passed. Caller holds c.mu.
func (vs *versionScaler) decide(c *Cluster, s *service, v *version, now time.Time) (int, bool) {
	if vs.auto == nil || now.Before(vs.next) {
		return 0, false
	}
	vs.next = now.Add(max(vs.scale.RefreshPeriod, time.Millisecond))
	loads, err := c.router.Load(s.name)
	if err != nil {
		return 0, false
	}
	for _, l := range loads {
		if l.Version != v.name {
			continue
		}
		ready := l.ReadyReplicas
		d := vs.auto.Observe(autoscale.Observation{Time: now, InFlight: l.InFlight, ReadyReplicas: ready, CurrentReplicas: vs.desired})
		vs.desired = d.DesiredReplicas
		return d.DesiredReplicas, true
	}
	return 0, false
}
