package frontend_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/aksml/aksml/frontend"
)

// A web service with key auth: one version, one replica.
func ExampleRouter() {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, `{"echo": %s}`, body)
	}))
	defer replica.Close()

	rt := frontend.New(nil)
	key := frontend.GenerateKey()
	err := rt.SetRoute(frontend.Route{
		Name: "my-service",
		Auth: frontend.Auth{Mode: frontend.AuthKey, PrimaryKey: key, SecondaryKey: frontend.GenerateKey()},
		Versions: []frontend.Version{{
			Name:     "my-service",
			Replicas: []frontend.Replica{{ID: "pod-0", URL: replica.URL, Ready: true}},
		}},
	})
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go rt.Serve(ln)
	defer rt.Shutdown(context.Background())

	uri := "http://" + ln.Addr().String() + "/api/v1/service/my-service/score"
	for _, k := range []string{key, "wrong"} {
		req, _ := http.NewRequest("POST", uri, strings.NewReader(`[1, 2]`))
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(b))
	}
	// Output:
	// 200 {"echo": [1, 2]}
	// 401 Unauthorized: invalid key
}

// An endpoint with a canary at 10 %: the split is exact, so 10 of every 100
// consecutive requests reach it.
func ExampleRouter_SetRoute() {
	serve := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	}
	stable, canary := serve("stable"), serve("canary")
	defer stable.Close()
	defer canary.Close()

	rt := frontend.New(nil)
	rt.SetRoute(frontend.Route{Name: "ep", Versions: []frontend.Version{
		{Name: "stable", IsDefault: true, Replicas: []frontend.Replica{{ID: "s0", URL: stable.URL, Ready: true}}},
		{Name: "canary", TrafficPercent: 10, Replicas: []frontend.Replica{{ID: "c0", URL: canary.URL, Ready: true}}},
	}})
	counts := map[string]int{}
	for i := 0; i < 100; i++ {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/service/ep/score", strings.NewReader("{}")))
		counts[w.Body.String()]++
	}
	fmt.Println(counts)
	st, _ := rt.Stats("ep")
	for _, v := range st.Versions {
		fmt.Printf("%s: %v%% of traffic, %d requests\n", v.Name, v.EffectivePercent, v.Requests)
	}
	// Output:
	// map[canary:10 stable:90]
	// stable: 90% of traffic, 90 requests
	// canary: 10% of traffic, 10 requests
}
