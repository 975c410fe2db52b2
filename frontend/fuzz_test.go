package frontend

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/api/v1/service/a/score", "/api/v1/service/a/versions/b/swagger.json", "/api/v1/service//score",
		"/api/v1/service/a/versions//score", "/api/v1/service/a", "/metrics", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, version, kind, ok := parsePath([]byte(p))
		if !ok {
			return
		}
		suffix := "/score"
		if kind == kindSwagger {
			suffix = "/swagger.json"
		}
		rebuilt := PathPrefix + string(name)
		if version != nil {
			rebuilt += "/versions/" + string(version)
		}
		if rebuilt+suffix != p || len(name) == 0 {
			t.Errorf("parsePath(%q) = %q %q %v", p, name, version, kind)
		}
	})
}

func FuzzTokenJSON(f *testing.F) {
	f.Add(`{"accessToken":"x","tokenType":"Bearer","refreshAfter":1,"expiryOn":2}`)
	f.Add(`{"expiryOn":1e300}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, s string) {
		var tok Token
		if err := tok.UnmarshalJSON([]byte(s)); err != nil {
			return
		}
		if _, err := tok.MarshalJSON(); err != nil {
			t.Errorf("marshal after unmarshal of %q: %v", s, err)
		}
	})
}

// FuzzRouter sends arbitrary methods, paths and credentials to a router with
// key and token routes; it must never panic nor let a request through
// without a valid credential.
func FuzzRouter(f *testing.F) {
	f.Add("POST", "/api/v1/service/keyed/score", "Bearer k", "v")
	f.Add("GET", "/api/v1/service/tok/versions/v/swagger.json", "bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "")
	f.Add("PATCH", "/api/v1/service/keyed/score", "", "nope")
	f.Add("POST", "/api/v1/service/keyed/score", "Bearer ", "")
	rt := New(nil)
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	f.Cleanup(rep.Close)
	v := Version{Name: "v", Replicas: []Replica{{ID: "r", URL: rep.URL, Ready: true}}, MaxConcurrentPerReplica: 8}
	if err := rt.SetRoute(Route{Name: "keyed", Auth: Auth{Mode: AuthKey, PrimaryKey: "secret-key"}, Versions: []Version{v}}); err != nil {
		f.Fatal(err)
	}
	if err := rt.SetRoute(Route{Name: "tok", Auth: Auth{Mode: AuthToken}, Versions: []Version{v}}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, auth, target string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || strings.ContainsAny(method, " \r\n\t()<>@,;:\\\"/[]?={}") || method == "" {
			return
		}
		req, err := http.NewRequest(method, "http://x"+path, strings.NewReader("{}"))
		if err != nil {
			return
		}
		if strings.ContainsAny(auth+target, "\r\n\x00") {
			return
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set(HeaderVersion, target)
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		if w.Code == 200 && strings.HasSuffix(req.URL.Path, "/score") && auth != "Bearer secret-key" && !strings.EqualFold(auth, "bearer secret-key") {
			t.Errorf("%s %s with %q got 200", method, path, auth)
		}
	})
}

func TestPathHelpers(t *testing.T) {
	t.Parallel()
	for _, p := range []string{ScoringPath("svc"), SwaggerPath("svc"), VersionScoringPath("ep", "v1"), VersionSwaggerPath("ep", "v1")} {
		if _, _, _, ok := parsePath([]byte(p)); !ok {
			t.Errorf("%s does not parse", p)
		}
	}
	if ScoringPath("svc") != "/api/v1/service/svc/score" || VersionScoringPath("ep", "v1") != "/api/v1/service/ep/versions/v1/score" {
		t.Error("paths changed")
	}
}
