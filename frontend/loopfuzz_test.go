package frontend

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzEventLoopVsNetHTTP sends the same bytes to one router served three
// ways, by Serve's event loop and by ServeTLS's lean engine (split at
// random points across several writes, so that each reads them in pieces)
// and as an http.Handler under net/http, and checks that callers get the
// same status codes, in the same order. Inputs with a bare LF or a folded header line are left
// out: the event loop refuses them (400) where net/http accepts them, by
// design (see doc.go). Interim 100 Continue answers are not compared: the
// loop sends one only while it waits for the body.
func FuzzEventLoopVsNetHTTP(f *testing.F) {
	for _, s := range []string{
		"POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
		"GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/service/nope/score HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"PUT /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET /api/v1/service/svc/score HTTP/9.9\r\nHost: x\r\n\r\n",
		"GET /path\r\n",
		"POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
		"POST /api/v1/service/svc/score HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
		"POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
		"GET /api/v1/service/svc/swagger.json?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"POST /api/v1/service/svc/score HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"0",
		"POST /a%0X0 HTTP/0.0\r\n\r\n",
		"GET /api/v1/service/svc/score HTTP/1.1\r\nHost:\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET * HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/0.9\r\nbad header\r\n\r\n",
		"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s), uint64(1))
	}
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	defer rep.Close()
	rt := New(&Options{MaxBodyBytes: 1 << 16})
	if err := rt.SetRoute(Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 64,
		Replicas: []Replica{{ID: "r", URL: rep.URL, Ready: true}}}}}); err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rt.Serve(ln) }()
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	rt.SetCertificate(engineCert())
	wg.Add(1)
	go func() { defer wg.Done(); rt.ServeTLS(tln) }()
	defer func() { rt.Shutdown(f.Context()); wg.Wait() }()
	ref := httptest.NewServer(rt)
	defer ref.Close()

	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		if len(in) > 4096 || bareLFOrFold(in) {
			t.Skip()
		}
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		var cuts []int
		for i := rng.IntN(4); i > 0 && len(in) > 1; i-- {
			cuts = append(cuts, 1+rng.IntN(len(in)-1))
		}
		got := statuses(t, "http://"+ln.Addr().String(), in, cuts)
		gotTLS := statuses(t, "https://"+tln.Addr().String(), in, cuts)
		want := statuses(t, ref.URL, in, nil)
		if !equalInts(got, want) {
			t.Errorf("event loop answered %v, net/http %v, to %q (cut at %v)", got, want, in, cuts)
		}
		if !equalInts(gotTLS, want) {
			t.Errorf("the lean TLS engine answered %v, net/http %v, to %q (cut at %v)", gotTLS, want, in, cuts)
		}
	})
}

// bareLFOrFold reports whether in has a LF without CR before it, or a
// header line starting with a blank.
func bareLFOrFold(in []byte) bool {
	for i, c := range in {
		if c == '\n' && (i == 0 || in[i-1] != '\r') {
			return true
		}
	}
	return bytes.Contains(in, []byte("\r\n ")) || bytes.Contains(in, []byte("\r\n\t"))
}

// fuzzEnd follows every input, so that each side's answers end in a known
// way (a half-closed connection would count as a caller hanging up).
const fuzzEnd = "GET /api/v1/service/svc/swagger.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

// statuses writes in and fuzzEnd to base (in pieces at cuts) and returns
// the status codes of the answers, 100 Continue left out, and -1 when the
// answers stopped without the connection closing (an incomplete request).
func statuses(t *testing.T, base string, in []byte, cuts []int) []int {
	c, err := dialBase(base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in = append(append([]byte(nil), in...), fuzzEnd...)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	prev := 0
	for _, cut := range append(sortedInts(cuts), len(in)) {
		if cut <= prev {
			continue
		}
		if _, err := c.Write(in[prev:cut]); err != nil {
			break
		}
		prev = cut
		time.Sleep(time.Millisecond) // let the loop read this piece alone
	}
	br := bufio.NewReader(c)
	var codes []int
	for {
		c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond)) // long enough for a loaded machine
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				codes = append(codes, -1)
			}
			return codes
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusContinue {
			codes = append(codes, resp.StatusCode)
		}
		if strings.EqualFold(resp.Header.Get("Connection"), "close") {
			return codes
		}
	}
}

func sortedInts(x []int) []int {
	out := append([]int(nil), x...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
