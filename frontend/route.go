package frontend

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
)

// AuthMode says how callers of a route authenticate.
type AuthMode int

const (
	// AuthNone accepts every caller.
	AuthNone AuthMode = iota
	// AuthKey requires "Authorization: Bearer KEY" with the primary or the
	// secondary key (auth_enabled).
	AuthKey
	// AuthToken requires "Authorization: Bearer TOKEN" with a token issued by
	// the router's TokenIssuer for this route's name and not yet expired
	// (token_auth_enabled).
	AuthToken
)

// String returns "none", "key" or "token".
func (m AuthMode) String() string {
	switch m {
	case AuthNone:
		return "none"
	case AuthKey:
		return "key"
	case AuthToken:
		return "token"
	}
	return fmt.Sprintf("AuthMode(%d)", int(m))
}

// Auth is a route's authentication: the mode and, for AuthKey, the two keys.
// Either key may be empty (an empty key never matches), but not both.
type Auth struct {
	Mode         AuthMode
	PrimaryKey   string
	SecondaryKey string
}

// Replica is one backend instance of a version: a scoring server reachable
// over plain HTTP.
type Replica struct {
	// ID identifies the replica across route updates: in-flight accounting
	// and pooled connections are kept for IDs that stay.
	ID string
	// URL is the replica's base URL, "http://127.0.0.1:PORT". The router sends
	// POST/GET URL/score and GET URL/swagger.json.
	URL string
	// Ready says whether the replica may receive traffic (its readiness probe
	// passes). A version without any ready replica receives no live traffic.
	Ready bool
}

// Version is one deployment behind a route. A plain web service is a route
// with a single version.
type Version struct {
	// Name is the version's name, unique in the route; it appears in the
	// per-version URI, the targeting header and the metrics labels.
	Name string
	// TrafficPercent is the share of the route's live traffic, 0–100.
	TrafficPercent float64
	// IsDefault marks the version that takes the traffic no version claims
	// (100 − the sum of all percentages) and the share of versions that have
	// no ready replica. When no version is marked, the first one is the
	// default; marking two is an error.
	IsDefault bool
	// MirrorPercent is the share (0–100) of the route's live requests, served
	// by other versions, of which this version receives a copy. Mirrored
	// responses are discarded; a mirror never delays or fails the caller
	// (when this version has no free slot the copy is dropped and counted).
	// Several versions may mirror at once.
	MirrorPercent float64
	// Replicas are the version's backends.
	Replicas []Replica
	// MaxConcurrentPerReplica caps the requests in flight on each replica
	// (replica_max_concurrent_requests); 0 means 1, the Azure default.
	MaxConcurrentPerReplica int
	// MaxQueueWait is how long a request waits for a free slot before a 503
	// (max_request_wait_time); 0 means 500 ms.
	MaxQueueWait time.Duration
	// ScoringTimeout bounds the replica's answer, counted from the request's
	// arrival or, when it waited for a free replica slot, from the end of
	// that wait; past it the caller gets 504 (scoring_timeout_ms); 0 means
	// 60 s.
	ScoringTimeout time.Duration
}

// Route is what the router serves under one name: a web service (one version)
// or an endpoint (up to any number of versions; the endpoint layer enforces
// its own limit of six).
type Route struct {
	// Name is the service or endpoint name: /api/v1/service/NAME/score.
	Name     string
	Auth     Auth
	Versions []Version
}

// Defaults for Version fields left zero.
const (
	DefaultMaxConcurrentPerReplica = 1
	DefaultMaxQueueWait            = 500 * time.Millisecond
	DefaultScoringTimeout          = 60 * time.Second
)

// validate checks r and returns every problem at once, each an
// errcode.InvalidArgument naming the field.
func (r *Route) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, format, args...))
	}
	if r.Name == "" || strings.ContainsAny(r.Name, "/?#% ") {
		bad("route name %q must be non-empty and contain no '/', '?', '#', '%%' or space", r.Name)
	}
	switch r.Auth.Mode {
	case AuthNone, AuthToken:
	case AuthKey:
		if r.Auth.PrimaryKey == "" && r.Auth.SecondaryKey == "" {
			bad("route %s: key auth needs primary_key or secondary_key", r.Name)
		}
	default:
		bad("route %s: auth mode %d is not none, key or token", r.Name, int(r.Auth.Mode))
	}
	if len(r.Versions) == 0 {
		bad("route %s: versions is empty; a route needs at least one version", r.Name)
	}
	if len(r.Versions) > 255 {
		bad("route %s: %d versions is above the limit of 255", r.Name, len(r.Versions))
	}
	seen := map[string]bool{}
	defaults, sum := 0, 0.0
	for i, v := range r.Versions {
		if v.Name == "" || strings.ContainsAny(v.Name, "/?#% ") {
			bad("route %s: versions[%d] name %q must be non-empty and contain no '/', '?', '#', '%%' or space", r.Name, i, v.Name)
		}
		if seen[v.Name] {
			bad("route %s: version name %q is used twice", r.Name, v.Name)
		}
		seen[v.Name] = true
		if v.IsDefault {
			defaults++
		}
		if !(v.TrafficPercent >= 0 && v.TrafficPercent <= 100) {
			bad("route %s: version %s traffic_percentile %v is not within 0–100", r.Name, v.Name, v.TrafficPercent)
		} else {
			sum += v.TrafficPercent
		}
		if !(v.MirrorPercent >= 0 && v.MirrorPercent <= 100) {
			bad("route %s: version %s mirror percent %v is not within 0–100", r.Name, v.Name, v.MirrorPercent)
		}
		if v.MaxConcurrentPerReplica < 0 {
			bad("route %s: version %s replica_max_concurrent_requests %d is negative", r.Name, v.Name, v.MaxConcurrentPerReplica)
		}
		if v.MaxQueueWait < 0 {
			bad("route %s: version %s max_request_wait_time %v is negative", r.Name, v.Name, v.MaxQueueWait)
		}
		if v.ScoringTimeout < 0 {
			bad("route %s: version %s scoring_timeout_ms %v is negative", r.Name, v.Name, v.ScoringTimeout)
		}
		ids := map[string]bool{}
		for j, rep := range v.Replicas {
			if rep.ID == "" {
				bad("route %s: version %s replicas[%d] has an empty ID", r.Name, v.Name, j)
			} else if ids[rep.ID] {
				bad("route %s: version %s replica ID %q is used twice", r.Name, v.Name, rep.ID)
			}
			ids[rep.ID] = true
			if _, err := replicaHost(rep.URL); err != nil {
				bad("route %s: version %s replica %s URL %q: %v", r.Name, v.Name, rep.ID, rep.URL, err)
			}
		}
	}
	if defaults > 1 {
		bad("route %s: %d versions are marked default; at most one may be", r.Name, defaults)
	}
	if sum > 100+1e-9 {
		bad("route %s: traffic percentiles sum to %v, above 100", r.Name, sum)
	}
	return errors.Join(errs...)
}

// replicaHost returns HOST:PORT of an http:// replica URL.
func replicaHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.Scheme != "http" {
		return "", errors.New("scheme must be http")
	}
	if u.Host == "" || u.Port() == "" {
		return "", errors.New("host:port is missing")
	}
	if u.Path != "" && u.Path != "/" {
		return "", errors.New("must have no path")
	}
	return u.Host, nil
}

// weightUnits is the resolution of traffic shares: one unit is 0.01 %.
const weightUnits = 10000

// effectiveWeights computes each version's live share in units of 0.01 %
// (summing to weightUnits), given which versions can take traffic.
//
// The default version takes its own percentage plus the remainder to 100 and
// the shares of versions that cannot take traffic. If the default itself
// cannot take traffic, its share is spread over the routable versions in
// proportion to their percentages; a version at 0 % never receives live
// traffic this way. The result is all zero when no routable version has a
// positive share.
func effectiveWeights(pct []float64, def int, routable []bool) []int {
	n := len(pct)
	eff := make([]float64, n)
	sum := 0.0
	for i, p := range pct {
		sum += p
		eff[i] = p
	}
	if rem := 100 - sum; rem > 0 {
		eff[def] += rem
	}
	moved := 0.0
	for i := range eff {
		if !routable[i] {
			moved += eff[i]
			eff[i] = 0
		}
	}
	if moved > 0 {
		if routable[def] {
			eff[def] += moved
		} else {
			live := 0.0
			for i := range eff {
				live += eff[i]
			}
			if live > 0 {
				for i := range eff {
					eff[i] += moved * eff[i] / live
				}
			}
		}
	}
	// Largest remainder rounding to integer units summing to weightUnits.
	total := 0.0
	for _, e := range eff {
		total += e
	}
	out := make([]int, n)
	if total <= 0 {
		return out
	}
	type rem struct {
		i int
		f float64
	}
	rems := make([]rem, 0, n)
	got := 0
	for i, e := range eff {
		x := e / total * weightUnits
		fl := math.Floor(x)
		out[i] = int(fl)
		got += out[i]
		if e > 0 {
			rems = append(rems, rem{i, x - fl})
		}
	}
	for got < weightUnits && len(rems) > 0 {
		best := 0
		for j := range rems {
			if rems[j].f > rems[best].f {
				best = j
			}
		}
		out[rems[best].i]++
		got++
		rems[best].f = -1
	}
	return out
}
