package endpoint_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/webservice"
)

// TestLifecycle walks an endpoint through the AksEndpoint calls: create
// (the first version is the default), create_version, scoring on the
// endpoint and on each version's URI, lookup and list, keys and their
// rotation, update of auth, description and tags, and delete.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	first := version("blue", 0, 1)
	first.AuthEnabled = nil // key auth, the AKS default
	first.Description = "scorer endpoint"
	first.Tags = map[string]string{"team": "fraud"}
	ep := e.create(ctx, t, "scorer", first, e.echo(t, "blue"))

	rec := ep.Record()
	if ep.Name() != "scorer" || rec.ComputeType != "AKSENDPOINT" || rec.Auth != webservice.AuthKey ||
		rec.Description != "scorer endpoint" || rec.Tags["team"] != "fraud" {
		t.Errorf("record %+v: want AKSENDPOINT scorer with key auth, description and tags", rec)
	}
	if len(rec.Versions) != 1 || !rec.Versions[0].Config.IsDefault || rec.Versions[0].Type != endpoint.Treatment {
		t.Errorf("versions %+v: the first version must be the default", rec.Versions)
	}
	if !strings.HasSuffix(ep.ScoringURI(), "/api/v1/service/scorer/score") {
		t.Errorf("scoring URI %q", ep.ScoringURI())
	}
	if _, err := endpoint.Create(ctx, e.target, "scorer", version("other", 0, 1), e.echo(t, "x"), nil); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("second Create(scorer) = %v, want AlreadyExists", err)
	}

	green := version("green", 30, 1)
	green.IsControlVersion = true
	if err := ep.CreateVersion(ctx, green, e.echo(t, "green")); err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ep.Versions(); !slices.Equal(got, []string{"blue", "green"}) {
		t.Errorf("Versions() = %v", got)
	}
	if r := ep.Record(); r.Versions[1].Type != endpoint.Control || r.Versions[0].Type != endpoint.Treatment {
		t.Errorf("types %v %v, want blue Treatment, green Control", r.Versions[0].Type, r.Versions[1].Type)
	}
	for _, v := range []string{"blue", "green"} {
		uri, err := ep.VersionScoringURI(v)
		if err != nil || !strings.HasSuffix(uri, "/api/v1/service/scorer/versions/"+v+"/score") {
			t.Errorf("VersionScoringURI(%s) = %q %v", v, uri, err)
		}
		out, err := ep.RunVersion(ctx, v, `{"x":1}`)
		if err != nil || tagOf(t, out) != v {
			t.Errorf("RunVersion(%s) = %s %v", v, out, err)
		}
	}
	if _, err := ep.VersionScoringURI("purple"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("VersionScoringURI(purple) = %v, want NotFound", err)
	}
	// Run follows the split: exactly 3 of 10 to green (30 %).
	got := map[string]int{}
	for range 10 {
		out, err := ep.Run(ctx, map[string]any{"data": []int{1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		got[tagOf(t, out)]++
	}
	if got["green"] != 3 || got["blue"] != 7 {
		t.Errorf("10 requests at 30%% green: %v", got)
	}

	// Keys are the endpoint's: without one, 401; rotation rejects the old.
	primary, secondary, err := ep.Keys()
	if err != nil || primary == "" || secondary == "" || primary == secondary {
		t.Fatalf("Keys() = %q %q %v", primary, secondary, err)
	}
	if code, _, _, _ := e.post(ctx, ep.ScoringURI(), `{}`); code != http.StatusUnauthorized {
		t.Errorf("no key: %d, want 401", code)
	}
	if code, _, _, _ := e.post(ctx, ep.ScoringURI(), `{}`, "Authorization", "Bearer "+secondary); code != 200 {
		t.Errorf("secondary key: %d, want 200", code)
	}
	if err := ep.RegenKey(ctx, webservice.KeyType("Primary"), ""); err != nil {
		t.Fatal(err)
	}
	if code, _, _, _ := e.post(ctx, ep.ScoringURI(), `{}`, "Authorization", "Bearer "+primary); code != http.StatusUnauthorized {
		t.Errorf("old primary key after RegenKey: %d, want 401", code)
	}
	if _, err := ep.Run(ctx, `{}`); err != nil {
		t.Errorf("Run after RegenKey: %v", err)
	}
	if err := ep.RegenKey(ctx, webservice.KeyType("Tertiary"), ""); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("RegenKey(Tertiary) = %v, want InvalidArgument", err)
	}

	// Lookup from the workspace, and list.
	again, err := endpoint.Get(ctx, e.target, "scorer")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Versions(), ep.Versions()) || again.ScoringURI() != ep.ScoringURI() {
		t.Errorf("Get: versions %v uri %q", again.Versions(), again.ScoringURI())
	}
	if out, err := again.RunVersion(ctx, "green", `{}`); err != nil || tagOf(t, out) != "green" {
		t.Errorf("RunVersion on the looked-up endpoint: %s %v", out, err)
	}
	if _, err := endpoint.Get(ctx, e.target, "nobody"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Get(nobody) = %v, want NotFound", err)
	}
	recs, err := endpoint.List(ctx, e.ws)
	if err != nil || len(recs) != 1 || recs[0].Name != "scorer" || len(recs[0].Versions) != 2 {
		t.Errorf("List = %+v %v", recs, err)
	}

	// Update: nothing to change is refused; description and tags; token auth.
	if err := ep.Update(ctx, endpoint.Update{}); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("empty Update = %v, want InvalidArgument", err)
	}
	if err := ep.Update(ctx, endpoint.Update{AuthEnabled: new(true), TokenAuthEnabled: new(true)}); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("key and token auth together = %v, want InvalidArgument", err)
	}
	if err := ep.Update(ctx, endpoint.Update{Description: new("v2 rollout"), Tags: map[string]string{"stage": "canary"}}); err != nil {
		t.Fatal(err)
	}
	if r := ep.Record(); r.Description != "v2 rollout" || r.Tags["stage"] != "canary" || r.Tags["team"] != "" {
		t.Errorf("after Update: description %q tags %v", r.Description, r.Tags)
	}
	if err := ep.Update(ctx, endpoint.Update{AuthEnabled: new(false), TokenAuthEnabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ep.Keys(); !errors.Is(err, errcode.FailedPrecondition) {
		t.Errorf("Keys() with token auth = %v, want FailedPrecondition", err)
	}
	tok, err := ep.Token(ctx)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("Token() = %+v %v", tok, err)
	}
	if code, _, _, _ := e.post(ctx, ep.ScoringURI(), `{}`, "Authorization", "Bearer "+tok.AccessToken); code != 200 {
		t.Errorf("token: %d, want 200", code)
	}
	if out, err := ep.Run(ctx, `{}`); err != nil {
		t.Errorf("Run with token auth: %s %v", out, err)
	}

	// Delete removes every version, the route and the record.
	uri := ep.ScoringURI()
	if err := ep.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := endpoint.Get(ctx, e.target, "scorer"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Get after Delete = %v, want NotFound", err)
	}
	if code, _, _, _ := e.post(ctx, uri, `{}`); code != http.StatusNotFound {
		t.Errorf("scoring a deleted endpoint: %d, want 404", code)
	}
	if _, err := e.target.Cluster().ServiceStatus(ctx, "scorer"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("ServiceStatus after Delete = %v, want NotFound", err)
	}
	if recs, err := endpoint.List(ctx, e.ws); err != nil || len(recs) != 0 {
		t.Errorf("List after Delete = %+v %v", recs, err)
	}
}

// checkInvariants compares the record with the router's route: exactly
// one default, at most one control, and the router's percentages, default
// and versions equal the record's.
func checkInvariants(t *testing.T, e *env, ep *endpoint.Endpoint) {
	t.Helper()
	rec := ep.Record()
	defaults, controls := 0, 0
	def := ""
	for _, v := range rec.Versions {
		if v.Config.IsDefault {
			defaults++
			def = v.Config.VersionName
		}
		if v.Type == endpoint.Control {
			controls++
		}
	}
	if defaults != 1 || controls > 1 {
		t.Errorf("record has %d defaults and %d controls, want 1 and at most 1", defaults, controls)
	}
	rs := e.stats(t, rec.Name)
	if rs.Default != def {
		t.Errorf("router default %q, record default %q", rs.Default, def)
	}
	if len(rs.Versions) != len(rec.Versions) {
		t.Fatalf("router has %d versions, record %d", len(rs.Versions), len(rec.Versions))
	}
	for i, v := range rec.Versions {
		rv := rs.Versions[i]
		if rv.Name != v.Config.VersionName || rv.TrafficPercent != v.Config.TrafficPercentile || rv.IsDefault != v.Config.IsDefault || rv.MirrorPercent != v.MirrorPercent {
			t.Errorf("router version %+v, record %+v", rv, v)
		}
	}
}

// TestRules checks the endpoint rules on one endpoint, step by step: a
// seventh version, a second default, a second control, percentages over
// 100, a version named like the endpoint and deleting the default are all
// impossible; a refused change leaves the endpoint and its route as they
// were.
func TestRules(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	ep := e.create(ctx, t, "rules", version("ver1", 0, 1), e.echo(t, "ver1"))
	checkInvariants(t, e, ep)
	for _, v := range []string{"ver2", "ver3", "ver4", "ver5", "ver6"} {
		if err := ep.CreateVersion(ctx, version(v, 10, 1), e.echo(t, v)); err != nil {
			t.Fatalf("CreateVersion(%s): %v", v, err)
		}
	}
	if err := ep.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, e, ep)

	type step struct {
		name string
		do   func() error
		code *errcode.Code // nil: must succeed
		msg  []string
	}
	pct := func(p float64) *float64 { return &p }
	flag := func(b bool) *bool { return &b }
	defaultOf := func() string {
		for _, v := range ep.Record().Versions {
			if v.Config.IsDefault {
				return v.Config.VersionName
			}
		}
		return ""
	}
	controlOf := func() []string {
		var out []string
		for _, v := range ep.Record().Versions {
			if v.Type == endpoint.Control {
				out = append(out, v.Config.VersionName)
			}
		}
		return out
	}
	steps := []step{
		{"a seventh version", func() error { return ep.CreateVersion(ctx, version("ver7", 0, 1), e.echo(t, "ver7")) },
			errcode.ResourceExhausted, []string{`"rules"`, "6 versions"}},
		{"a version name in use", func() error { return ep.CreateVersion(ctx, version("ver2", 0, 1), e.echo(t, "ver2")) },
			errcode.AlreadyExists, []string{`"ver2" already exists`}},
		{"a version named like the endpoint", func() error { return ep.CreateVersion(ctx, version("rules", 0, 1), e.echo(t, "x")) },
			errcode.InvalidArgument, []string{"version_name", "must differ from the endpoint name"}},
		{"traffic_percentile 101", func() error { return ep.CreateVersion(ctx, version("ver8", 101, 1), e.echo(t, "x")) },
			errcode.InvalidArgument, []string{"traffic_percentile 101"}},
		{"traffic_percentile NaN", func() error {
			return ep.UpdateVersion(ctx, "ver2", endpoint.VersionUpdate{TrafficPercentile: pct(math.NaN())})
		}, errcode.InvalidArgument, []string{"traffic_percentile"}},
		{"traffic_percentile -5", func() error {
			return ep.UpdateVersion(ctx, "ver2", endpoint.VersionUpdate{TrafficPercentile: pct(-5)})
		}, errcode.InvalidArgument, []string{"traffic_percentile -5"}},
		{"percentages summing to 110", func() error {
			return ep.UpdateVersion(ctx, "ver2", endpoint.VersionUpdate{TrafficPercentile: pct(70)})
		}, errcode.InvalidArgument, []string{"sum to 110", "at most 100"}},
		{"percentages summing to exactly 100", func() error {
			return ep.UpdateVersion(ctx, "ver2", endpoint.VersionUpdate{TrafficPercentile: pct(60)})
		}, nil, nil},
		{"mirror_percent 150", func() error {
			return ep.UpdateVersion(ctx, "ver3", endpoint.VersionUpdate{MirrorPercent: pct(150)})
		}, errcode.InvalidArgument, []string{"mirror_percent 150"}},
		{"an unknown version", func() error {
			return ep.UpdateVersion(ctx, "ver9", endpoint.VersionUpdate{TrafficPercentile: pct(1)})
		}, errcode.NotFound, []string{`"ver9"`}},
		{"deleting an unknown version", func() error { return ep.DeleteVersion(ctx, "ver9") },
			errcode.NotFound, []string{`"ver9"`}},
		{"deleting the default", func() error { return ep.DeleteVersion(ctx, "ver1") },
			errcode.FailedPrecondition, []string{`"ver1" is the default`, "make another version the default"}},
		{"un-defaulting the default", func() error {
			return ep.UpdateVersion(ctx, "ver1", endpoint.VersionUpdate{IsDefault: flag(false)})
		}, errcode.FailedPrecondition, []string{`"ver1" is the default`}},
		{"a second default un-defaults the first", func() error {
			if err := ep.UpdateVersion(ctx, "ver3", endpoint.VersionUpdate{IsDefault: flag(true)}); err != nil {
				return err
			}
			if d := defaultOf(); d != "ver3" {
				t.Errorf("default %q, want ver3", d)
			}
			return nil
		}, nil, nil},
		{"a first control", func() error {
			if err := ep.UpdateVersion(ctx, "ver2", endpoint.VersionUpdate{IsControlVersion: flag(true)}); err != nil {
				return err
			}
			if c := controlOf(); !slices.Equal(c, []string{"ver2"}) {
				t.Errorf("controls %v, want [ver2]", c)
			}
			return nil
		}, nil, nil},
		{"a second control turns the first into a treatment", func() error {
			if err := ep.UpdateVersion(ctx, "ver4", endpoint.VersionUpdate{IsControlVersion: flag(true)}); err != nil {
				return err
			}
			if c := controlOf(); !slices.Equal(c, []string{"ver4"}) {
				t.Errorf("controls %v, want [ver4]", c)
			}
			return nil
		}, nil, nil},
		{"the old default can go now", func() error { return ep.DeleteVersion(ctx, "ver1") }, nil, nil},
		{"a new version created as default and control", func() error {
			v := version("ver7", 0, 1)
			v.IsDefault, v.IsControlVersion = true, true
			if err := ep.CreateVersion(ctx, v, e.echo(t, "ver7")); err != nil {
				return err
			}
			if d, c := defaultOf(), controlOf(); d != "ver7" || !slices.Equal(c, []string{"ver7"}) {
				t.Errorf("default %q controls %v, want ver7 and [ver7]", d, c)
			}
			return nil
		}, nil, nil},
		{"still no seventh version", func() error { return ep.CreateVersion(ctx, version("ver8", 0, 1), e.echo(t, "ver8")) },
			errcode.ResourceExhausted, []string{"6 versions"}},
		{"deleting the new default", func() error { return ep.DeleteVersion(ctx, "ver7") },
			errcode.FailedPrecondition, []string{`"ver7" is the default`}},
	}
	for _, s := range steps {
		before := ep.Record()
		beforeRoute := e.stats(t, "rules")
		err := s.do()
		if s.code == nil {
			if err != nil {
				t.Errorf("%s: %v", s.name, err)
			}
		} else {
			wantErr(t, s.name, err, s.code, s.msg...)
			after := ep.Record()
			afterRoute := e.stats(t, "rules")
			if after.Generation != before.Generation || !slices.Equal(versionNames(after), versionNames(before)) || !sameRoute(beforeRoute, afterRoute) {
				t.Errorf("%s: a refused change changed the endpoint: generation %d→%d, versions %v→%v",
					s.name, before.Generation, after.Generation, versionNames(before), versionNames(after))
			}
			if stored, err := endpoint.Get(ctx, e.target, "rules"); err != nil || stored.Record().Generation != before.Generation {
				t.Errorf("%s: the stored record changed (%v)", s.name, err)
			}
		}
		checkInvariants(t, e, ep)
	}
	if got := ep.Versions(); !slices.Equal(got, []string{"ver2", "ver3", "ver4", "ver5", "ver6", "ver7"}) {
		t.Errorf("versions at the end: %v", got)
	}
	st, err := ep.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st.Versions {
		if v.Name == "ver1" {
			t.Errorf("deleted version ver1 still in the status")
		}
	}
}

func versionNames(r endpoint.Record) []string {
	var out []string
	for _, v := range r.Versions {
		out = append(out, v.Config.VersionName)
	}
	return out
}

func sameRoute(a, b frontend.RouteStats) bool {
	if a.Default != b.Default || len(a.Versions) != len(b.Versions) {
		return false
	}
	for i := range a.Versions {
		x, y := a.Versions[i], b.Versions[i]
		if x.Name != y.Name || x.TrafficPercent != y.TrafficPercent || x.IsDefault != y.IsDefault || x.MirrorPercent != y.MirrorPercent {
			return false
		}
	}
	return true
}

// TestCreateValidates checks that Create refuses a bad endpoint or first
// version with every problem at once and leaves nothing behind.
func TestCreateValidates(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newEnv(t)
	bad := version("Bad_Version", 120, 1)
	bad.CPUCores, bad.CPUCoresLimit = 1, 0.5
	_, err := endpoint.Create(ctx, e.target, "Bad_Endpoint", bad, e.echo(t, "x"), nil)
	wantErr(t, "bad endpoint", err, errcode.InvalidArgument, "Bad_Endpoint", "Bad_Version", "traffic_percentile 120", "cpu_cores_limit 0.5")
	same := version("same", 0, 1)
	_, err = endpoint.Create(ctx, e.target, "same", same, e.echo(t, "x"), nil)
	wantErr(t, "version named like the endpoint", err, errcode.InvalidArgument, "must differ from the endpoint name")
	if recs, err := endpoint.List(ctx, e.ws); err != nil || len(recs) != 0 {
		t.Errorf("refused creations left records: %+v %v", recs, err)
	}
	if _, err := e.target.Cluster().ServiceStatus(ctx, "same"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("refused creation left a service: %v", err)
	}
	// A first version asked to be neither default nor control is still the
	// default: an endpoint always has one.
	v := version("only", 40, 1)
	ep := e.create(ctx, t, "lonely", v, e.echo(t, "only"))
	if r := ep.Record(); !r.Versions[0].Config.IsDefault {
		t.Errorf("first version is not the default: %+v", r.Versions[0])
	}
	st, err := ep.Status(ctx)
	if err != nil || st.State != driver.Healthy || len(st.Versions) != 1 || !st.Versions[0].ServesTraffic {
		t.Errorf("status %+v %v", st, err)
	}
	// 40 % to the only version, the remaining 60 % to the default: the same.
	if got := versionStats(e.stats(t, "lonely"), "only"); got.EffectivePercent != 100 {
		t.Errorf("effective share of the only version %v%%, want 100", got.EffectivePercent)
	}
}

// Wait writes a Progress line per change of state or reason: the
// scheduler's words at once for a version no node can hold, and Healthy
// at the end for one that fits.
func TestWaitProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out strings.Builder
	ep, err := endpoint.Create(testCtx(t), e.target, "prog", version("first", 0, 1), e.echo(t, "first"), &endpoint.CreateOptions{Progress: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, " endpoint prog: Healthy") {
		t.Errorf("last progress line %q, want the endpoint Healthy (all: %q)", last, lines)
	}

	out.Reset()
	big := version("big", 0, 1)
	big.CPUCores = 1000
	ep, err = endpoint.Create(testCtx(t), e.target, "prog-big", big, e.echo(t, "big"), &endpoint.CreateOptions{Progress: &out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := ep.Wait(ctx); err == nil {
		t.Fatal("a version no node can hold became ready")
	}
	if !strings.Contains(out.String(), "endpoint prog-big: ") || !strings.Contains(out.String(), "Insufficient cpu") {
		t.Errorf("progress %q does not give the scheduler's reason", out.String())
	}
}
