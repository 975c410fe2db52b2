package frontend

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets are the upper bounds, in seconds, of the latency histogram.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// latencyBucketsNs are latencyBuckets as durations.
var latencyBucketsNs = func() []time.Duration {
	out := make([]time.Duration, len(latencyBuckets))
	for i, b := range latencyBuckets {
		out[i] = time.Duration(math.Round(b * 1e9))
	}
	return out
}()

// versionState is the router's live state for one version of a route: its
// replica pool and its counters. It survives route updates that keep the
// version, so counters, queues and in-flight accounting carry over.
type versionState struct {
	route, name string
	pool        *pool

	inflight atomic.Int64 // live requests assigned to the version, queued ones included

	codes     [600]atomic.Uint64 // responses by status code
	buckets   []atomic.Uint64    // latency histogram, len(latencyBuckets)+1
	latencyNs atomic.Int64
	count     atomic.Uint64

	mirrorTick    atomic.Uint64
	mirrorSent    atomic.Uint64
	mirrorDropped atomic.Uint64
	mirrorFailed  atomic.Uint64
}

func newVersionState(route, name string, clock func() time.Time) *versionState {
	return &versionState{route: route, name: name, pool: newPool(clock), buckets: make([]atomic.Uint64, len(latencyBuckets)+1)}
}

// observe records one finished live request.
func (v *versionState) observe(code int, d time.Duration) {
	if code >= 0 && code < len(v.codes) {
		v.codes[code].Add(1)
	}
	i := 0
	for i < len(latencyBucketsNs) && d > latencyBucketsNs[i] {
		i++
	}
	v.buckets[i].Add(1)
	v.latencyNs.Add(int64(d))
	v.count.Add(1)
}

// mirrorNow advances the version's mirror counter and reports whether this
// request is copied: exactly floor(n×pct/100) of the first n requests are.
func (v *versionState) mirrorNow(units uint64) bool {
	n := v.mirrorTick.Add(1)
	return n*units/weightUnits > (n-1)*units/weightUnits
}

// collector exposes every route's counters at scrape time, so the request
// path pays only for a few atomic additions.
type collector struct{ rt *Router }

var (
	descRequests = prometheus.NewDesc("aksml_frontend_requests_total",
		"Live scoring requests answered, by service, version and HTTP status code.",
		[]string{"service", "version", "code"}, nil)
	descErrors = prometheus.NewDesc("aksml_frontend_errors_total",
		"Live scoring requests answered with a status of 400 or more, by service, version and code.",
		[]string{"service", "version", "code"}, nil)
	descLatency = prometheus.NewDesc("aksml_frontend_request_duration_seconds",
		"Time from receiving a scoring request to its response, as seen by the router.",
		[]string{"service", "version"}, nil)
	descInFlight = prometheus.NewDesc("aksml_frontend_in_flight_requests",
		"Live requests assigned to a version and not yet answered, queued ones included.",
		[]string{"service", "version"}, nil)
	descQueued = prometheus.NewDesc("aksml_frontend_queued_requests",
		"Requests waiting for a free replica slot.",
		[]string{"service", "version"}, nil)
	descReplicas = prometheus.NewDesc("aksml_frontend_replicas",
		"Replicas of a version known to the router.",
		[]string{"service", "version"}, nil)
	descReady = prometheus.NewDesc("aksml_frontend_ready_replicas",
		"Replicas of a version that may receive traffic now.",
		[]string{"service", "version"}, nil)
	descTraffic = prometheus.NewDesc("aksml_frontend_traffic_percent",
		"Share of live traffic the router currently sends to a version, after readiness fallback.",
		[]string{"service", "version"}, nil)
	descMirror = prometheus.NewDesc("aksml_frontend_mirrored_requests_total",
		"Copies of live requests sent to a mirroring version, by result (sent, dropped, failed).",
		[]string{"service", "version", "result"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descErrors, descLatency, descInFlight, descQueued, descReplicas, descReady, descTraffic, descMirror} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	t := c.rt.table.Load()
	for _, r := range t.routes {
		for i, v := range r.versions {
			lv := []string{r.name, v.name}
			for code := range v.codes {
				n := v.codes[code].Load()
				if n == 0 {
					continue
				}
				cs := strconv.Itoa(code)
				ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), r.name, v.name, cs)
				if code >= 400 {
					ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(n), r.name, v.name, cs)
				}
			}
			bk := make(map[float64]uint64, len(latencyBuckets))
			cum := uint64(0)
			for j, ub := range latencyBuckets {
				cum += v.buckets[j].Load()
				bk[ub] = cum
			}
			cum += v.buckets[len(latencyBuckets)].Load()
			ch <- prometheus.MustNewConstHistogram(descLatency, cum, time.Duration(v.latencyNs.Load()).Seconds(), bk, lv...)
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(v.inflight.Load()), lv...)
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(v.pool.queued.Load()), lv...)
			reps, ready, _ := v.pool.counts()
			ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(reps), lv...)
			ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, float64(ready), lv...)
			ch <- prometheus.MustNewConstMetric(descTraffic, prometheus.GaugeValue, float64(r.weights[i])*100/weightUnits, lv...)
			if r.cfg[i].MirrorPercent > 0 || v.mirrorSent.Load()+v.mirrorDropped.Load()+v.mirrorFailed.Load() > 0 {
				ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(v.mirrorSent.Load()), r.name, v.name, "sent")
				ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(v.mirrorDropped.Load()), r.name, v.name, "dropped")
				ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(v.mirrorFailed.Load()), r.name, v.name, "failed")
			}
		}
	}
}

// VersionStats is a snapshot of one version's routing state and counters.
type VersionStats struct {
	Name string
	// IsDefault, TrafficPercent and MirrorPercent are as configured.
	IsDefault      bool
	TrafficPercent float64
	MirrorPercent  float64
	// EffectivePercent is the share of live traffic the router sends to the
	// version now, after the default's remainder and readiness fallback.
	EffectivePercent float64
	// Routable says whether the version had a ready replica when the route
	// was last set; a version that is not gets no live traffic.
	Routable bool
	// Replicas and ReadyReplicas count the version's replicas now
	// (ReadyReplicas excludes replicas skipped after a failed connection).
	Replicas, ReadyReplicas int
	// InFlight counts live requests assigned to the version and not yet
	// answered, queued ones included; Queued counts those waiting for a slot.
	// This is the load signal for the version's autoscaler.
	InFlight, Queued int
	// Requests counts answered live requests; Responses splits them by
	// status code; Errors counts those with a status of 400 or more.
	Requests  uint64
	Responses map[int]uint64
	Errors    uint64
	// LatencySum is the total router-side latency of answered requests.
	LatencySum time.Duration
	// Mirrored, MirrorDropped and MirrorFailed count copies of live traffic
	// sent to this version, dropped for lack of a free slot, and failed.
	Mirrored, MirrorDropped, MirrorFailed uint64
}

// RouteStats is a snapshot of a route.
type RouteStats struct {
	Name string
	// Default is the default version's name.
	Default string
	// Fallback is true when some version's configured share is going to
	// another version because it has no ready replica.
	Fallback bool
	// Ready is true when at least one version can take live traffic.
	Ready    bool
	Versions []VersionStats
}

func (r *compiled) stats() RouteStats {
	rs := RouteStats{Name: r.name, Default: r.cfg[r.def].Name, Fallback: r.fallback, Ready: r.sched != nil}
	for i, v := range r.versions {
		reps, ready, _ := v.pool.counts()
		vs := VersionStats{
			Name:             v.name,
			IsDefault:        i == r.def,
			TrafficPercent:   r.cfg[i].TrafficPercent,
			MirrorPercent:    r.cfg[i].MirrorPercent,
			EffectivePercent: math.Round(float64(r.weights[i])*100/weightUnits*100) / 100,
			Routable:         r.routable[i],
			Replicas:         reps,
			ReadyReplicas:    ready,
			InFlight:         int(v.inflight.Load()),
			Queued:           int(v.pool.queued.Load()),
			Requests:         v.count.Load(),
			Responses:        map[int]uint64{},
			LatencySum:       time.Duration(v.latencyNs.Load()),
			Mirrored:         v.mirrorSent.Load(),
			MirrorDropped:    v.mirrorDropped.Load(),
			MirrorFailed:     v.mirrorFailed.Load(),
		}
		for code := range v.codes {
			if n := v.codes[code].Load(); n > 0 {
				vs.Responses[code] = n
				if code >= 400 {
					vs.Errors += n
				}
			}
		}
		rs.Versions = append(rs.Versions, vs)
	}
	return rs
}

// VersionLoad is the load signal of one version, sampled by the caller (the
// backend's autoscaler loop).
type VersionLoad struct {
	Version string
	// InFlight counts live requests assigned to the version, queued included.
	InFlight int
	// Queued counts requests waiting for a slot.
	Queued int
	// Replicas and ReadyReplicas count the version's replicas.
	Replicas, ReadyReplicas int
}
