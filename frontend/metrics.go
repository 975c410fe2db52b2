package frontend

import (
	"math"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
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

// The exposition of PathMetrics is written here in Prometheus' text format
// (version 0.0.4), read from the counters at scrape time, so the request
// path pays only for a few atomic additions. The format is small and
// stable, and writing it directly keeps the Prometheus client library (and
// protobuf) out of every program that links the router, the simulator's
// included; the tests read the output back with Prometheus' own parser.

// metricsContentType is the text format's media type.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// family is one metric family of the exposition: its name, help, type,
// and the samples it takes from one version.
type family struct {
	name, help, typ string
	write           func(w *expoWriter, r *compiled, i int, v *versionState)
}

var families = []family{
	{"aksml_frontend_errors_total", "Live scoring requests answered with a status of 400 or more, by service, version and code.", "counter",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			for code := 400; code < len(v.codes); code++ {
				if n := v.codes[code].Load(); n > 0 {
					w.sample("", float64(n), "code", strconv.Itoa(code), "service", r.name, "version", v.name)
				}
			}
		}},
	{"aksml_frontend_in_flight_requests", "Live requests assigned to a version and not yet answered, queued ones included.", "gauge",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			w.sample("", float64(v.inflight.Load()), "service", r.name, "version", v.name)
		}},
	{"aksml_frontend_mirrored_requests_total", "Copies of live requests sent to a mirroring version, by result (sent, dropped, failed).", "counter",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			sent, dropped, failed := v.mirrorSent.Load(), v.mirrorDropped.Load(), v.mirrorFailed.Load()
			if r.cfg[i].MirrorPercent > 0 || sent+dropped+failed > 0 {
				w.sample("", float64(dropped), "result", "dropped", "service", r.name, "version", v.name)
				w.sample("", float64(failed), "result", "failed", "service", r.name, "version", v.name)
				w.sample("", float64(sent), "result", "sent", "service", r.name, "version", v.name)
			}
		}},
	{"aksml_frontend_queued_requests", "Requests waiting for a free replica slot.", "gauge",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			w.sample("", float64(v.pool.queued.Load()), "service", r.name, "version", v.name)
		}},
	{"aksml_frontend_ready_replicas", "Replicas of a version that may receive traffic now.", "gauge",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			_, ready, _ := v.pool.counts()
			w.sample("", float64(ready), "service", r.name, "version", v.name)
		}},
	{"aksml_frontend_replicas", "Replicas of a version known to the router.", "gauge",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			reps, _, _ := v.pool.counts()
			w.sample("", float64(reps), "service", r.name, "version", v.name)
		}},
	{"aksml_frontend_request_duration_seconds", "Time from receiving a scoring request to its response, as seen by the router.", "histogram",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			cum := uint64(0)
			for j, ub := range latencyBuckets {
				cum += v.buckets[j].Load()
				w.sample("_bucket", float64(cum), "service", r.name, "version", v.name, "le", strconv.FormatFloat(ub, 'g', -1, 64))
			}
			cum += v.buckets[len(latencyBuckets)].Load()
			w.sample("_bucket", float64(cum), "service", r.name, "version", v.name, "le", "+Inf")
			w.sample("_sum", time.Duration(v.latencyNs.Load()).Seconds(), "service", r.name, "version", v.name)
			w.sample("_count", float64(cum), "service", r.name, "version", v.name)
		}},
	{"aksml_frontend_requests_total", "Live scoring requests answered, by service, version and HTTP status code.", "counter",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			for code := range v.codes {
				if n := v.codes[code].Load(); n > 0 {
					w.sample("", float64(n), "code", strconv.Itoa(code), "service", r.name, "version", v.name)
				}
			}
		}},
	{"aksml_frontend_traffic_percent", "Share of live traffic the router currently sends to a version, after readiness fallback.", "gauge",
		func(w *expoWriter, r *compiled, i int, v *versionState) {
			w.sample("", float64(r.weights[i])*100/weightUnits, "service", r.name, "version", v.name)
		}},
}

// expoWriter appends one family's lines.
type expoWriter struct {
	b    []byte
	name string
}

// sample appends "NAME+suffix{k="v",...} value"; label values are escaped
// as the format requires (backslash, double quote, newline).
func (w *expoWriter) sample(suffix string, value float64, labels ...string) {
	w.b = append(w.b, w.name...)
	w.b = append(w.b, suffix...)
	w.b = append(w.b, '{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, labels[i]...)
		w.b = append(w.b, '=', '"')
		for _, c := range []byte(labels[i+1]) {
			switch c {
			case '\\':
				w.b = append(w.b, '\\', '\\')
			case '"':
				w.b = append(w.b, '\\', '"')
			case '\n':
				w.b = append(w.b, '\\', 'n')
			default:
				w.b = append(w.b, c)
			}
		}
		w.b = append(w.b, '"')
	}
	w.b = append(w.b, '}', ' ')
	switch {
	case math.IsInf(value, 1):
		w.b = append(w.b, "+Inf"...)
	case math.IsInf(value, -1):
		w.b = append(w.b, "-Inf"...)
	default:
		w.b = strconv.AppendFloat(w.b, value, 'g', -1, 64)
	}
	w.b = append(w.b, '\n')
}

// appendMetrics appends the exposition of every route to b: the families
// in name order, each with its HELP and TYPE lines, then its samples by
// route name and version order. A family without samples is left out.
func (rt *Router) appendMetrics(b []byte) []byte {
	t := rt.table.Load()
	names := make([]string, 0, len(t.routes))
	for name := range t.routes {
		names = append(names, name)
	}
	sort.Strings(names)
	w := &expoWriter{}
	for _, f := range families {
		w.name, w.b = f.name, w.b[:0]
		for _, name := range names {
			r := t.routes[name]
			for i, v := range r.versions {
				f.write(w, r, i, v)
			}
		}
		if len(w.b) == 0 {
			continue
		}
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.help...)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		b = append(b, w.b...)
	}
	return b
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
