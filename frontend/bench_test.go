package frontend

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkRoute measures one scoring request through Serve (event
// loop, key auth) to a fasthttp replica, over loopback. Compare with
// BenchmarkDirect for the router's share.
func BenchmarkRoute(b *testing.B) {
	rep := fastReplica(b)
	rt := New(nil)
	if err := rt.SetRoute(Route{Name: "svc", Auth: Auth{Mode: AuthKey, PrimaryKey: "k"},
		Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1024, Replicas: []Replica{{ID: "r", URL: "http://" + rep, Ready: true}}}}}); err != nil {
		b.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go rt.Serve(ln)
	b.Cleanup(func() { rt.Shutdown(b.Context()) })
	load(b, ln.Addr().String(), "/api/v1/service/svc/score")
}

func BenchmarkDirect(b *testing.B) {
	load(b, fastReplica(b), "/score")
}

func fastReplica(b *testing.B) string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"result": [0.5]}`)
	}}
	go s.Serve(ln)
	b.Cleanup(func() { s.Shutdown() })
	return ln.Addr().String()
}

func load(b *testing.B, addr, path string) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: 1024}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		for pb.Next() {
			req.Reset()
			req.SetRequestURI("http://" + addr + path)
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer k")
			req.SetBodyString(`{"data": [[1.0, 2.0, 3.0, 4.0]]}`)
			if err := c.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d %s", err, resp.StatusCode(), resp.Body())
				return
			}
		}
	})
	c.CloseIdleConnections()
}
