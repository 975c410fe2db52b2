package frontend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"

	"github.com/aksml/aksml/errcode"
)

// waitFor polls cond until it holds or a deadline passes. The deadline is
// generous: the package's tests run in parallel, under -race, beside other
// packages' (TestTLSCallerThatDoesNotReadIsClosed, 0.4 s alone, once missed
// a 5 s deadline in a full run with three busy loops beside); a passing
// test never waits for it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func closedPortURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func TestStatusMatrix(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rt := New(&Options{MaxBodyBytes: 1024})
			base := serve(t, rt, engine)
			echo := startReplica(t, "echo", func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%s %s?%s %s auth=%q", r.Method, r.URL.Path, r.URL.RawQuery, b, r.Header.Get("Authorization"))
			})
			slow := startReplica(t, "slow", func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body) // lets net/http notice the caller leaving
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
			})
			fail := startReplica(t, "fail", func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom in run()", http.StatusInternalServerError)
			})
			crash := startReplica(t, "crash", func(w http.ResponseWriter, r *http.Request) {
				c, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
			})
			one := func(name string, rep Replica, timeout time.Duration) Route {
				return Route{Name: name, Versions: []Version{{Name: "v", Replicas: []Replica{rep},
					MaxConcurrentPerReplica: 1, MaxQueueWait: 50 * time.Millisecond, ScoringTimeout: timeout}}}
			}
			mustSet(t, rt, one("echo", echo.replica("e", true), 0))
			mustSet(t, rt, one("timeout", slow.replica("s", true), 100*time.Millisecond))
			mustSet(t, rt, one("fail", fail.replica("f", true), 0))
			mustSet(t, rt, one("crash", crash.replica("c", true), 0))
			mustSet(t, rt, one("noready", echo.replica("e", false), 0))
			mustSet(t, rt, one("dead", Replica{ID: "d", URL: closedPortURL(t), Ready: true}, 0))
			tests := []struct {
				name, method, path, body string
				code                     int
				bodyRE                   string
			}{
				{"ok", "POST", "/api/v1/service/echo/score?x=1", `{"data":1}`, 200, `^POST /score\?x=1 \{"data":1\} auth=""$`},
				{"get score", "GET", "/api/v1/service/echo/score", "", 200, `^GET /score`},
				{"swagger", "GET", "/api/v1/service/echo/swagger.json", "", 200, `^GET /swagger.json`},
				{"version uri", "POST", "/api/v1/service/echo/versions/v/score", "{}", 200, `^POST /score`},
				{"unknown service", "POST", "/api/v1/service/nope/score", "{}", 404, `^Service nope not found$`},
				{"unknown version", "POST", "/api/v1/service/echo/versions/nope/score", "{}", 404, `^Version nope not found in service echo$`},
				{"bad path", "POST", "/api/v1/service/echo/predict", "{}", 404, `^Not found$`},
				{"root", "GET", "/", "", 404, `^Not found$`},
				{"put", "PUT", "/api/v1/service/echo/score", "{}", 405, `^Method PUT is not allowed`},
				{"delete", "DELETE", "/api/v1/service/echo/score", "", 405, `not allowed`},
				{"options", "OPTIONS", "/api/v1/service/echo/score", "", 405, `not allowed`},
				{"too large", "POST", "/api/v1/service/echo/score", strings.Repeat("x", 1025), 413, `larger than the limit of 1024 bytes`},
				{"at limit", "POST", "/api/v1/service/echo/score", strings.Repeat("x", 1024), 200, `^POST`},
				{"timeout", "POST", "/api/v1/service/timeout/score", "{}", 504, `^Scoring request for service timeout timed out after 100 ms$`},
				{"replica 500", "POST", "/api/v1/service/fail/score", "{}", 502, `boom in run\(\)`},
				{"replica crash", "POST", "/api/v1/service/crash/score", "{}", 502, `^Replica closed connection before replying$`},
				{"no ready replica", "POST", "/api/v1/service/noready/score", "{}", 503, `^No ready replicas for service noready$`},
				{"unreachable replica", "POST", "/api/v1/service/dead/score", "{}", 503, `^No ready replicas for service dead$`},
			}
			for _, tc := range tests {
				got := do(t, tc.method, base+tc.path, tc.body)
				if got.code != tc.code || !regexp.MustCompile(tc.bodyRE).MatchString(got.body) {
					t.Errorf("%s: got %d %q, want %d matching %q", tc.name, got.code, got.body, tc.code, tc.bodyRE)
				}
				if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(got.header.Get("x-ms-request-id")) {
					t.Errorf("%s: x-ms-request-id %q is not a UUID", tc.name, got.header.Get("x-ms-request-id"))
				}
				if tc.code == 405 && got.header.Get("Allow") != "GET, POST" {
					t.Errorf("%s: Allow = %q", tc.name, got.header.Get("Allow"))
				}
			}

			// Overloaded: one slot, taken by a slow request; the next waits
			// 50 ms in the queue and gets 503.
			mustSet(t, rt, one("busy", slow.replica("s", true), 2*time.Second))
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				do(t, "POST", base+"/api/v1/service/busy/score", "{}")
			}()
			waitFor(t, "the slow request in flight", func() bool {
				l, _ := rt.Load("busy")
				return l[0].InFlight == 1
			})
			got := do(t, "POST", base+"/api/v1/service/busy/score", "{}")
			if got.code != 503 || got.body != "Too many requests for service busy (overloaded)" {
				t.Errorf("overloaded: got %d %q", got.code, got.body)
			}
			if got.dur < 50*time.Millisecond {
				t.Errorf("overloaded answered after %v, before the 50 ms queue wait", got.dur)
			}
			wg.Wait()
		})
	}
}

func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			clk := testclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			rt := New(&Options{Clock: clk})
			base := serve(t, rt, engine)
			rep := startReplica(t, "ok", nil)
			keyRoute := func(p, s string) Route {
				return Route{Name: "keyed", Auth: Auth{Mode: AuthKey, PrimaryKey: p, SecondaryKey: s}, Versions: []Version{version("v", 0, rep)}}
			}
			k1, k2, k3 := GenerateKey(), GenerateKey(), GenerateKey()
			mustSet(t, rt, keyRoute(k1, k2))
			mustSet(t, rt, Route{Name: "tokened", Auth: Auth{Mode: AuthToken}, Versions: []Version{version("v", 0, rep)}})
			mustSet(t, rt, Route{Name: "other", Auth: Auth{Mode: AuthToken}, Versions: []Version{version("v", 0, rep)}})
			mustSet(t, rt, Route{Name: "open", Versions: []Version{version("v", 0, rep)}})

			tok, err := rt.Token("tokened")
			if err != nil {
				t.Fatal(err)
			}
			otherTok, _ := rt.Token("other")
			foreign, _ := NewTokenIssuer([]byte("another secret"), &TokenOptions{Clock: clk}).Issue("tokened")
			tampered := []byte(tok.AccessToken)
			tampered[len(tampered)/2] ^= 1
			score := func(name, auth string) result {
				if auth == "" {
					return do(t, "POST", base+"/api/v1/service/"+name+"/score", "{}")
				}
				return do(t, "POST", base+"/api/v1/service/"+name+"/score", "{}", "Authorization: "+auth)
			}
			tests := []struct {
				name, route, auth string
				code              int
				reason            string
			}{
				{"no header", "keyed", "", 401, "missing Authorization: Bearer header"},
				{"wrong key", "keyed", "Bearer " + k3, 401, "invalid key"},
				{"no scheme", "keyed", k1, 401, "missing Authorization: Bearer header"},
				{"basic scheme", "keyed", "Basic " + k1, 401, "missing"},
				{"key prefix", "keyed", "Bearer " + k1[:10], 401, "invalid key"},
				{"primary", "keyed", "Bearer " + k1, 200, ""},
				{"secondary", "keyed", "Bearer " + k2, 200, ""},
				{"lowercase scheme", "keyed", "bearer " + k1, 200, ""},
				{"token on key route", "keyed", "Bearer " + tok.AccessToken, 401, "invalid key"},
				{"token", "tokened", "Bearer " + tok.AccessToken, 200, ""},
				{"token no header", "tokened", "", 401, "missing"},
				{"key on token route", "tokened", "Bearer " + k1, 401, "token is invalid"},
				{"tampered token", "tokened", "Bearer " + string(tampered), 401, "token"},
				{"foreign signer", "tokened", "Bearer " + foreign.AccessToken, 401, "signature is invalid"},
				{"other service token", "tokened", "Bearer " + otherTok.AccessToken, 401, "token is for another service"},
				{"open route", "open", "", 200, ""},
				{"open route ignores junk", "open", "Bearer junk", 200, ""},
			}
			for _, tc := range tests {
				got := score(tc.route, tc.auth)
				if got.code != tc.code || (tc.code == 401 && !strings.HasPrefix(got.body, "Unauthorized: ") || !strings.Contains(got.body, tc.reason)) {
					t.Errorf("%s: got %d %q, want %d with %q", tc.name, got.code, got.body, tc.code, tc.reason)
				}
				if tc.code == 401 && got.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: no WWW-Authenticate header", tc.name)
				}
			}

			// Regenerating the primary key rejects its old value at once.
			mustSet(t, rt, keyRoute(k3, k2))
			if got := score("keyed", "Bearer "+k1); got.code != 401 {
				t.Errorf("old primary after regeneration: got %d", got.code)
			}
			if got := score("keyed", "Bearer "+k3); got.code != 200 {
				t.Errorf("new primary: got %d", got.code)
			}

			// Tokens expire.
			if !tok.RefreshAfter.Before(tok.ExpiryOn) || !tok.ExpiryOn.Equal(clk.Now().Add(DefaultTokenTTL)) || tok.TokenType != "Bearer" {
				t.Errorf("token times: %+v", tok)
			}
			clk.Step(DefaultTokenTTL + time.Second)
			if got := score("tokened", "Bearer "+tok.AccessToken); got.code != 401 || !strings.Contains(got.body, "token expired") {
				t.Errorf("expired token: got %d %q", got.code, got.body)
			}
			fresh, _ := rt.Token("tokened")
			if got := score("tokened", "Bearer "+fresh.AccessToken); got.code != 200 {
				t.Errorf("fresh token: got %d", got.code)
			}
		})
	}
}

func TestTokenAPI(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	rep := startReplica(t, "ok", nil)
	mustSet(t, rt, Route{Name: "keyed", Auth: Auth{Mode: AuthKey, PrimaryKey: "k"}, Versions: []Version{version("v", 0, rep)}})
	if _, err := rt.Token("keyed"); !errors.Is(err, errcode.FailedPrecondition) {
		t.Errorf("Token on a key route: %v, want FailedPrecondition", err)
	}
	if _, err := rt.Token("nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Token on an unknown route: %v, want NotFound", err)
	}
	clk := testclock.NewFakeClock(time.Unix(1700000000, 0))
	ti := NewTokenIssuer([]byte("s"), &TokenOptions{Clock: clk, TTL: 10 * time.Minute, RefreshAfter: 4 * time.Minute})
	tok, err := ti.Issue("svc")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tok.MarshalJSON()
	want := `{"accessToken":"` + tok.AccessToken + `","tokenType":"Bearer","refreshAfter":1700000240,"expiryOn":1700000600}`
	if string(b) != want {
		t.Errorf("token JSON\n got %s\nwant %s", b, want)
	}
	var back Token
	if err := back.UnmarshalJSON(b); err != nil || back.AccessToken != tok.AccessToken || !back.ExpiryOn.Equal(tok.ExpiryOn) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if err := ti.Verify(tok.AccessToken, "svc"); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := ti.Verify(tok.AccessToken, "svc2"); !errors.Is(err, errcode.Unauthenticated) {
		t.Errorf("Verify other service: %v", err)
	}
	if _, err := ti.Issue(""); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("Issue(\"\"): %v", err)
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := GenerateKey()
		if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(k) || seen[k] {
			t.Fatalf("key %q: bad shape or repeated", k)
		}
		seen[k] = true
	}
}

func TestSetRouteValidation(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	bad := Route{
		Name: "a/b",
		Auth: Auth{Mode: AuthKey},
		Versions: []Version{
			{Name: "x", TrafficPercent: 70, IsDefault: true, Replicas: []Replica{{ID: "r", URL: "https://h:1"}, {ID: "r", URL: "http://h"}}},
			{Name: "x", TrafficPercent: 40, IsDefault: true, MirrorPercent: 101, MaxConcurrentPerReplica: -1},
		},
	}
	err := rt.SetRoute(bad)
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Fatalf("SetRoute: %v, want InvalidArgument", err)
	}
	for _, want := range []string{`route name "a/b"`, "needs primary_key or secondary_key", "scheme must be http", "host:port is missing",
		`replica ID "r" is used twice`, `version name "x" is used twice`, "2 versions are marked default", "sum to 110", "mirror percent 101",
		"replica_max_concurrent_requests -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if err := rt.SetRoute(Route{Name: "empty"}); err == nil || !strings.Contains(err.Error(), "versions is empty") {
		t.Errorf("empty versions: %v", err)
	}
	if err := rt.RemoveRoute("nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("RemoveRoute unknown: %v", err)
	}
	if _, err := rt.Stats("nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Stats unknown: %v", err)
	}
}

func TestRemoveRoute(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	base := serve(t, rt, "nethttp")
	rep := startReplica(t, "ok", nil)
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{version("v", 0, rep)}})
	if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 200 {
		t.Fatalf("before removal: %d", got.code)
	}
	if err := rt.RemoveRoute("svc"); err != nil {
		t.Fatal(err)
	}
	if got := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); got.code != 404 {
		t.Errorf("after removal: %d", got.code)
	}
	if len(rt.Routes()) != 0 {
		t.Errorf("Routes = %v", rt.Routes())
	}
}

func TestShutdownIdempotentServe(t *testing.T) {
	t.Parallel()
	rt := New(nil)
	if err := rt.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := rt.Serve(ln); err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestChunkedRequestBody(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		rt := New(&Options{MaxBodyBytes: 64})
		base := serve(t, rt, engine)
		rep := startReplica(t, "echo", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d %s", r.ContentLength, b)
		})
		mustSet(t, rt, Route{Name: "svc", Versions: []Version{version("v", 0, rep)}})
		for _, tc := range []struct {
			body string
			code int
			want string
		}{{`{"a":1}`, 200, `7 {"a":1}`}, {strings.Repeat("y", 65), 413, "larger than the limit"}} {
			pr, pw := io.Pipe()
			go func() { io.WriteString(pw, tc.body); pw.Close() }()
			req, _ := http.NewRequest("POST", base+"/api/v1/service/svc/score", io.NopCloser(pr))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Errorf("%s: chunked %d-byte body: got %d %q", engine, len(tc.body), resp.StatusCode, b)
			}
		}
	}
}

// rawExchange sends one HTTP/1.1 request as written and returns the answer's
// status line and headers (names as sent) and body.
func rawExchange(t *testing.T, base, request string) (status string, header [][2]string, body string) {
	t.Helper()
	c, err := dialBase(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, _ = br.ReadString('\n')
	status = strings.TrimSpace(status)
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the answer's header: %v", err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		header = append(header, [2]string{k, v})
		if strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(v)
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatal(err)
	}
	return status, header, string(b)
}

// TestHeaderNameCase sends the headers the router reads with lower-case
// names, has the replica answer with lower-case hop-by-hop headers, and
// checks that both are handled as their canonical spellings: the key and
// version header are honoured, the key, the caller's request ID and hop
// headers do not reach the replica, and the replica's hop headers do not
// reach the caller.
func TestHeaderNameCase(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			seen := make(chan http.Header, 1)
			rep := startReplica(t, "v2", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				seen <- r.Header.Clone()
				w.Header()["keep-alive"] = []string{"timeout=5"}
				w.Header()["upgrade"] = []string{"h2c"}
				w.Header()["x-model"] = []string{"v2"}
				io.WriteString(w, "scored")
			})
			other := startReplica(t, "v1", nil)
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Auth: Auth{Mode: AuthKey, PrimaryKey: "k1"},
				Versions: []Version{{Name: "v1", IsDefault: true, TrafficPercent: 100, Replicas: []Replica{other.replica("a", true)}},
					{Name: "v2", Replicas: []Replica{rep.replica("b", true)}}}})
			status, header, body := rawExchange(t, base, "POST /api/v1/service/svc/score HTTP/1.1\r\nhost: x\r\n"+
				"authorization: Bearer k1\r\naksml-version: v2\r\nx-ms-request-id: from-caller\r\nkeep-alive: 300\r\n"+
				"proxy-authorization: Basic abc\r\ncontent-length: 2\r\n\r\n{}")
			if status != "HTTP/1.1 200 OK" || body != "scored" {
				t.Fatalf("got %q %q, want 200 from version v2", status, body)
			}
			got := <-seen
			for _, h := range []string{"Authorization", "Keep-Alive", "Proxy-Authorization"} {
				if v := got.Values(h); len(v) > 0 {
					t.Errorf("replica got %s: %q", h, v)
				}
			}
			if ids := got.Values("X-Ms-Request-Id"); len(ids) != 1 || ids[0] == "from-caller" {
				t.Errorf("replica got x-ms-request-id %q, want only the router's", ids)
			}
			var ids []string
			for _, kv := range header {
				switch strings.ToLower(kv[0]) {
				case "keep-alive", "upgrade":
					t.Errorf("caller got the replica's hop header %s: %s", kv[0], kv[1])
				case "x-ms-request-id":
					ids = append(ids, kv[1])
				}
			}
			if len(ids) != 1 || ids[0] != got.Get("X-Ms-Request-Id") {
				t.Errorf("caller got x-ms-request-id %q, replica %q", ids, got.Get("X-Ms-Request-Id"))
			}
			if !slices.ContainsFunc(header, func(kv [2]string) bool { return strings.EqualFold(kv[0], "x-model") && kv[1] == "v2" }) {
				t.Errorf("caller lost the replica's own header: %q", header)
			}
		})
	}
}
