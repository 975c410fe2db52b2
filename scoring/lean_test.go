package scoring

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The lean engine against net/http: the same handler behind each, the same
// bytes sent, the same bytes expected back (Date aside).

// script is what the differential test's handler does for one request.
type script []scriptOp

type scriptOp struct {
	op   byte // see run
	key  string
	val  string
	code int
	n    int
}

// leanPair runs one handler behind the lean engine and behind net/http.
type leanPair struct {
	lean, std string
	e         *leanEngine
	mu        sync.Mutex
	sc        script
}

func startLeanPair(t testing.TB) *leanPair {
	t.Helper()
	p := &leanPair{}
	h := http.HandlerFunc(p.serve)
	quiet := log.New(io.Discard, "", 0)
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs1 := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 1 << 20, ErrorLog: quiet}
	hs2 := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 1 << 20, ErrorLog: quiet}
	p.e = newLeanEngine(wrapListener(ln1), h, func() bool { return true }, hs1)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.e.accept() }()
	go func() { _ = hs2.Serve(wrapListener(ln2)) }()
	p.lean, p.std = ln1.Addr().String(), ln2.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.e.shutdown(ctx)
		<-done
		_ = hs2.Shutdown(ctx)
	})
	return p
}

// serve runs the current script; "/end" answers "end".
func (p *leanPair) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/end" || r.URL.RawQuery == "end" {
		_, _ = io.WriteString(w, "end")
		return
	}
	p.mu.Lock()
	sc := p.sc
	p.mu.Unlock()
	for _, o := range sc {
		switch o.op {
		case 'd': // describe the request as the handler sees it
			body, _ := io.ReadAll(r.Body)
			keys := make([]string, 0, len(r.Header))
			for k := range r.Header {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var b strings.Builder
			fmt.Fprintf(&b, "%s %q %q %q %s %d %d close=%v host=%q cl=%d te=%v\n", r.Method, r.RequestURI, r.URL.Path,
				r.URL.RawQuery, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Close, r.Host, r.ContentLength, r.TransferEncoding)
			for _, k := range keys {
				fmt.Fprintf(&b, "%s=%q\n", k, r.Header[k])
			}
			fmt.Fprintf(&b, "body=%q\n", body)
			_, _ = io.WriteString(w, b.String())
		case 'h':
			w.Header()[o.key] = append(w.Header()[o.key], o.val)
		case 'x':
			w.Header().Del(o.key)
		case 'c':
			w.WriteHeader(o.code)
		case 'w':
			_, _ = w.Write(bytes.Repeat([]byte(o.val), o.n))
		case 'f':
			_ = http.NewResponseController(w).Flush()
		case 'r':
			_, _ = io.CopyN(io.Discard, r.Body, int64(o.n))
		case 'z':
			_ = r.Body.Close()
		case 'p':
			panic(http.ErrAbortHandler)
		}
	}
}

// exchange sends req to addr, then a last request that closes the
// connection, and returns everything the server sent.
func exchange(t testing.TB, addr string, req []byte) []byte {
	t.Helper()
	return exchangeWith(t, addr, req, true)
}

// exchangeWith is exchange; halfClose ends the caller's side after the
// requests (a request left unfinished ends there; net/http also takes it
// as the caller leaving, which ends a streamed answer).
func exchangeWith(t testing.TB, addr string, req []byte, halfClose bool) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := append(slices.Clip(req), "GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"...)
	go func() {
		// Then nothing more: a request left unfinished ends there.
		_, _ = c.Write(msg)
		if halfClose {
			_ = c.(*net.TCPConn).CloseWrite()
		}
	}()
	out, _ := io.ReadAll(c)
	return out
}

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)

func (p *leanPair) compare(t testing.TB, name string, sc script, req []byte) {
	t.Helper()
	p.mu.Lock()
	p.sc = sc
	p.mu.Unlock()
	got := dateLine.ReplaceAll(exchange(t, p.lean, req), []byte("Date: D\r"))
	want := dateLine.ReplaceAll(exchange(t, p.std, req), []byte("Date: D\r"))
	if !bytes.Equal(got, want) {
		t.Errorf("%s: request %q\nlean engine sent\n%q\nnet/http sent\n%q", name, req, got, want)
	}
}

func post(body string, headers ...string) []byte {
	return fmt.Appendf(nil, "POST /score HTTP/1.1\r\nHost: replica\r\n%sContent-Length: %d\r\n\r\n%s",
		joinHeaders(headers), len(body), body)
}

func joinHeaders(hs []string) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	return b.String()
}

func TestLeanAnswersAsNetHTTP(t *testing.T) {
	p := startLeanPair(t)
	json := script{{op: 'h', key: "Content-Type", val: "application/json"}, {op: 'h', key: "Content-Length", val: "9"},
		{op: 'c', code: 200}, {op: 'w', val: `{"a": 1}` + "\n", n: 1}}
	cases := []struct {
		name string
		sc   script
		req  []byte
	}{
		{"describe POST", script{{op: 'd'}}, post(`{"data": [1, 2]}`, "X-Ms-Request-Id: abc", "traceparent: 00-1-2-01")},
		{"describe GET with query", script{{op: 'd'}}, []byte("GET /score?a=1&b=%20x HTTP/1.1\r\nHost: r:5001\r\nAccept: */*\r\n\r\n")},
		{"describe empty query", script{{op: 'd'}}, []byte("GET /score? HTTP/1.1\r\nHost: r\r\n\r\n")},
		{"describe repeated and odd headers", script{{op: 'd'}},
			post("x", "accept: a", "ACCEPT: b", "x-ÿ: 1", "X-Tab:\tv\t", "X-Empty:", "Connection: keep-alive, x")},
		{"describe Connection close", script{{op: 'd'}}, post("x", "Connection: close")},
		{"JSON with Content-Length", json, post("{}")},
		{"sniffed, length computed", script{{op: 'w', val: "<html>hi</html>", n: 1}}, post("{}")},
		{"no body at all", script{}, post("{}")},
		{"status only", script{{op: 'c', code: 404}}, post("{}")},
		{"unknown status", script{{op: 'c', code: 599}, {op: 'w', val: "x", n: 3}}, post("{}")},
		{"status 999", script{{op: 'c', code: 999}}, post("{}")},
		{"204 drops length and body", script{{op: 'h', key: "Content-Length", val: "4"}, {op: 'c', code: 204}, {op: 'w', val: "body", n: 1}}, post("{}")},
		{"304", script{{op: 'h', key: "Content-Type", val: "text/plain"}, {op: 'c', code: 304}}, post("{}")},
		{"103 then 200", script{{op: 'h', key: "Link", val: "</a>"}, {op: 'c', code: 103}, {op: 'w', val: "ok", n: 1}}, post("{}")},
		{"large body chunked", script{{op: 'w', val: "0123456789", n: 700}}, post("{}")},
		{"2048 bytes", script{{op: 'w', val: "a", n: 2048}}, post("{}")},
		{"2049 bytes in two writes", script{{op: 'w', val: "a", n: 2000}, {op: 'w', val: "b", n: 49}}, post("{}")},
		{"flush then write", script{{op: 'h', key: "Content-Type", val: "text/plain"}, {op: 'c', code: 200}, {op: 'f'}, {op: 'w', val: "chunk", n: 3}, {op: 'f'}, {op: 'w', val: "end", n: 1}}, post("{}")},
		{"flush with length", script{{op: 'h', key: "Content-Length", val: "6"}, {op: 'w', val: "abc", n: 1}, {op: 'f'}, {op: 'w', val: "def", n: 1}}, post("{}")},
		{"short of its length closes", script{{op: 'h', key: "Content-Length", val: "10"}, {op: 'w', val: "abc", n: 1}}, post("{}")},
		{"past its length", script{{op: 'h', key: "Content-Length", val: "2"}, {op: 'w', val: "abc", n: 1}, {op: 'w', val: "d", n: 1}}, post("{}")},
		{"invalid Content-Length", script{{op: 'h', key: "Content-Length", val: "x"}, {op: 'w', val: "abc", n: 1}}, post("{}")},
		{"Connection close from handler", script{{op: 'h', key: "Connection", val: "close"}, {op: 'w', val: "abc", n: 1}}, post("{}")},
		{"Transfer-Encoding identity", script{{op: 'h', key: "Transfer-Encoding", val: "identity"}, {op: 'w', val: "abc", n: 1}}, post("{}")},
		{"Transfer-Encoding chunked", script{{op: 'h', key: "Transfer-Encoding", val: "chunked"}, {op: 'w', val: "abc", n: 1}}, post("{}")},
		{"trailers", script{{op: 'h', key: "Trailer", val: "X-Sum, Content-Length"}, {op: 'w', val: "abc", n: 1}, {op: 'h', key: "X-Sum", val: "7"}, {op: 'h', key: "Trailer:X-Late", val: "9"}}, post("{}")},
		{"header newlines and bad names", script{{op: 'h', key: "X-Multi", val: " a\r\nb \n"}, {op: 'h', key: "Bad Name", val: "v"}, {op: 'h', key: "Date", val: "today"}}, post("{}")},
		{"header changed after WriteHeader", script{{op: 'h', key: "X-A", val: "1"}, {op: 'c', code: 201}, {op: 'h', key: "X-B", val: "2"}, {op: 'w', val: "x", n: 1}}, post("{}")},
		{"Header first called after WriteHeader", script{{op: 'c', code: 202}, {op: 'h', key: "X-B", val: "2"}, {op: 'w', val: "x", n: 1}}, post("{}")},
		{"body closed early", script{{op: 'r', n: 2}, {op: 'z'}, {op: 'w', val: "x", n: 1}}, post("abcdef")},
		{"body partly read", script{{op: 'r', n: 2}, {op: 'w', val: "x", n: 1}}, post("abcdef")},
		{"abort before anything", script{{op: 'p'}}, post("{}")},
		{"abort after a flush", script{{op: 'w', val: "x", n: 10}, {op: 'f'}, {op: 'w', val: "y", n: 10}, {op: 'p'}}, post("{}")},
		{"pipelined", script{{op: 'd'}}, append(post("one"), post("two")...)},
		{"CRLF after POST", script{{op: 'd'}}, append(post("one"), append([]byte("\r\n\r\n"), post("two")...)...)},
		{"large body mostly unread", script{{op: 'r', n: 10}, {op: 'w', val: "x", n: 1}}, post(strings.Repeat("b", 300<<10))},
		{"large body closed unread", script{{op: 'r', n: 10}, {op: 'z'}, {op: 'w', val: "x", n: 1}}, post(strings.Repeat("b", 300<<10))},
		{"large body read", script{{op: 'r', n: 300 << 10}, {op: 'w', val: "x", n: 1}}, post(strings.Repeat("b", 300<<10))},
		// Handed to net/http:
		{"chunked request", script{{op: 'd'}}, []byte("POST /score HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")},
		{"HTTP/1.0", script{{op: 'd'}}, []byte("POST /score HTTP/1.0\r\nHost: r\r\nContent-Length: 1\r\n\r\nx")},
		{"no Host", script{{op: 'd'}}, []byte("GET /score HTTP/1.1\r\n\r\n")},
		{"two Hosts", script{{op: 'd'}}, []byte("GET /score HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")},
		{"bad Host", script{{op: 'd'}}, []byte("GET /score HTTP/1.1\r\nHost: a b\r\n\r\n")},
		{"other path", script{{op: 'd'}}, []byte("GET /swagger.json HTTP/1.1\r\nHost: r\r\n\r\n")},
		{"encoded path", script{{op: 'd'}}, []byte("GET /%73core HTTP/1.1\r\nHost: r\r\n\r\n")},
		{"bare LF", script{{op: 'd'}}, []byte("GET /score HTTP/1.1\nHost: r\n\n")},
		{"malformed header", script{{op: 'd'}}, []byte("GET /score HTTP/1.1\r\nHost: r\r\nNo colon\r\n\r\n")},
		{"space before colon", script{{op: 'd'}}, []byte("GET /score HTTP/1.1\r\nHost: r\r\nX-A : 1\r\n\r\n")},
		{"folded header", script{{op: 'd'}}, []byte("GET /score HTTP/1.1\r\nHost: r\r\nX-A: 1\r\n 2\r\n\r\n")},
		{"two lengths", script{{op: 'd'}}, []byte("POST /score HTTP/1.1\r\nHost: r\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")},
		{"signed length", script{{op: 'd'}}, []byte("POST /score HTTP/1.1\r\nHost: r\r\nContent-Length: +1\r\n\r\nx")},
		{"Expect", script{{op: 'd'}}, append([]byte("POST /score HTTP/1.1\r\nHost: r\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"), nil...)},
		{"HEAD", script{{op: 'w', val: "x", n: 5}}, []byte("HEAD /score HTTP/1.1\r\nHost: r\r\n\r\n")},
		{"garbage", script{{op: 'd'}}, []byte("HELLO\r\n\r\n")},
		{"body over the lean limit", script{{op: 'r', n: 10}, {op: 'w', val: "x", n: 1}}, post(strings.Repeat("b", leanMaxBody+1))},
	}
	for _, tc := range cases {
		p.compare(t, tc.name, tc.sc, tc.req)
	}
	if p.e.served.Load() == 0 || p.e.handedOver.Load() == 0 {
		t.Errorf("lean path served %d requests and handed %d connections over; want both > 0", p.e.served.Load(), p.e.handedOver.Load())
	}
}

// FuzzLeanAnswersAsNetHTTP sends fuzzed requests and handler scripts to
// both engines and compares what comes back.
func FuzzLeanAnswersAsNetHTTP(f *testing.F) {
	f.Add([]byte("POST /score HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\n{}"), []byte("d"))
	f.Add([]byte("GET /score?x=1 HTTP/1.1\r\nHost: r\r\nX-A: 1\r\n\r\n"), []byte("hc\x00w\x05f"))
	f.Add([]byte("POST /score HTTP/1.1\r\nHost: r\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"), []byte("rzw"))
	f.Add([]byte("POST /score HTTP/1.1\r\nHost: r\r\nContent-Length: 1\r\n\r\nxPOST /score HTTP/1.1\r\nHost: r\r\n\r\n"), []byte("dhfw"))
	p := startLeanPair(f)
	f.Fuzz(func(t *testing.T, req, prog []byte) {
		if len(req) > 4096 || len(prog) > 32 {
			return
		}
		p.compare(t, "fuzz", fuzzScript(prog), req)
	})
}

// fuzzScript turns bytes into a handler script.
func fuzzScript(b []byte) script {
	keys := []string{"Content-Type", "Content-Length", "Transfer-Encoding", "Connection", "Date", "Trailer", "X-A", "Trailer:X-T", "Bad Key"}
	vals := []string{"", "0", "3", "10", "x", "close", "chunked", "identity", "text/plain", " a\nb ", "X-A"}
	codes := []int{200, 201, 204, 304, 404, 500, 599, 103, 999}
	var sc script
	arg := func(i int) int {
		if i+1 < len(b) {
			return int(b[i+1])
		}
		return 0
	}
	for i := 0; i < len(b); i++ {
		switch b[i] % 8 {
		case 0:
			sc = append(sc, scriptOp{op: 'd'})
		case 1:
			a := arg(i)
			sc = append(sc, scriptOp{op: 'h', key: keys[a%len(keys)], val: vals[(a/len(keys))%len(vals)]})
			i++
		case 2:
			sc = append(sc, scriptOp{op: 'c', code: codes[arg(i)%len(codes)]})
			i++
		case 3:
			sc = append(sc, scriptOp{op: 'w', val: "<p>", n: arg(i) * 9})
			i++
		case 4:
			sc = append(sc, scriptOp{op: 'f'})
		case 5:
			sc = append(sc, scriptOp{op: 'r', n: arg(i)})
			i++
		case 6:
			sc = append(sc, scriptOp{op: 'z'})
		case 7:
			if arg(i)%4 == 0 {
				sc = append(sc, scriptOp{op: 'p'})
			} else {
				sc = append(sc, scriptOp{op: 'x', key: keys[arg(i)%len(keys)]})
			}
			i++
		}
	}
	return sc
}

// serveBoth serves s with the lean engine and with net/http alone, and
// returns their addresses.
func serveBoth(t *testing.T, s *Server) (lean, std string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	addrs := make([]string, 2)
	for i, useLean := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		wg.Add(1)
		go func() { defer wg.Done(); _ = serve(ctx, ln, s, useLean) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return addrs[0], addrs[1]
}

// varying are the answer's lines that differ from run to run.
var varying = regexp.MustCompile(`(?m)^(Date|X-Ms-Run-Fn-Exec-Ms): [^\r]*\r$`)

func compareServed(t *testing.T, lean, std string, reqs map[string]string) {
	t.Helper()
	for name, req := range reqs {
		got := varying.ReplaceAll(exchangeWith(t, lean, []byte(req), false), []byte("$1: -\r"))
		want := varying.ReplaceAll(exchangeWith(t, std, []byte(req), false), []byte("$1: -\r"))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: request %q\nlean engine sent\n%q\nnet/http sent\n%q", name, req, got, want)
		}
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 ")) {
			t.Errorf("%s: no answer: %q", name, got)
		}
	}
}

// The replica's own answers are the same bytes on both engines.
func TestLeanServerAnswersAsNetHTTP(t *testing.T) {
	t.Parallel()
	s := goServer(t, &testHandler{}, Config{MaxBodyBytes: 64})
	lean, std := serveBoth(t, s)
	const id = "X-Request-Id: 1b4e28ba-2fa1-11d2-883f-0016d3cca427\r\n"
	compareServed(t, lean, std, map[string]string{
		"score":         "POST /score HTTP/1.1\r\nHost: r\r\n" + id + "Content-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"a\": 1}",
		"score GET":     "GET /score?a=1&b=%22x%22 HTTP/1.1\r\nHost: r\r\n" + id + "\r\n",
		"health":        "GET / HTTP/1.1\r\nHost: r\r\n" + id + "\r\n",
		"too large":     "POST /score HTTP/1.1\r\nHost: r\r\n" + id + "Content-Length: 65\r\n\r\n" + strings.Repeat("x", 65),
		"long id":       "POST /score HTTP/1.1\r\nHost: r\r\nX-Request-Id: " + strings.Repeat("i", 101) + "\r\nContent-Length: 2\r\n\r\n{}",
		"CORS":          "POST /score HTTP/1.1\r\nHost: r\r\n" + id + "Origin: https://a.test\r\nContent-Length: 2\r\n\r\n{}",
		"client id":     "POST /score HTTP/1.1\r\nHost: r\r\n" + id + "X-Ms-Client-Request-Id: c1\r\nContent-Length: 2\r\n\r\n{}",
		"PUT":           "PUT /score HTTP/1.1\r\nHost: r\r\n" + id + "Content-Length: 2\r\n\r\n{}",
		"swagger":       "GET /swagger.json HTTP/1.1\r\nHost: r\r\n" + id + "\r\n",
		"not found":     "GET /nope HTTP/1.1\r\nHost: r\r\n" + id + "\r\n",
		"keep-alive ×2": "POST /score HTTP/1.1\r\nHost: r\r\n" + id + "Content-Length: 2\r\n\r\n{}" + "POST /score HTTP/1.1\r\nHost: r\r\n" + id + "Content-Length: 3\r\n\r\n[1]",
	})
}

// A streamed AMLResponse from a @rawhttp run() (chunked, flushed chunk by
// chunk) and a broken stream are the same bytes on both engines.
func TestLeanServerStreamsAsNetHTTP(t *testing.T) {
	t.Parallel()
	s := pyServer(t, `from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

def items(n):
    for i in range(n):
        yield "item %d\n" % i

def broken():
    yield "first\n"
    raise RuntimeError("generator broke")

@rawhttp
def run(request):
    kind = request.args.get("kind", "")
    if kind == "stream":
        return AMLResponse(items(5), 200, {"Content-Type": "text/plain"})
    if kind == "broken":
        return AMLResponse(broken(), 200)
    if kind == "empty":
        return AMLResponse("", 204, {"X-Kind": "empty"})
    return AMLResponse(request.get_data(), 201, {"X-Kind": kind, "Content-Type": "application/octet-stream"})
`, Config{}, nil)
	lean, std := serveBoth(t, s)
	const id = "X-Request-Id: 1b4e28ba-2fa1-11d2-883f-0016d3cca427\r\n"
	compareServed(t, lean, std, map[string]string{
		"stream": "GET /score?kind=stream HTTP/1.1\r\nHost: r\r\n" + id + "\r\n",
		"broken": "GET /score?kind=broken HTTP/1.1\r\nHost: r\r\n" + id + "\r\n",
		"204":    "GET /score?kind=empty HTTP/1.1\r\nHost: r\r\n" + id + "\r\n",
		"echo":   "POST /score?kind=echo HTTP/1.1\r\nHost: r\r\n" + id + "Content-Length: 5\r\n\r\nhello",
	})
}

// A caller that hangs up ends its request's context, as on net/http.
func TestLeanCallerGoneEndsContext(t *testing.T) {
	t.Parallel()
	ended := make(chan error, 1)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			ended <- r.Context().Err()
		case <-time.After(10 * time.Second):
			ended <- nil
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := newLeanEngine(wrapListener(ln), h, func() bool { return true }, &http.Server{Handler: h})
	done := make(chan struct{})
	go func() { defer close(done); _ = e.accept() }()
	defer func() { _ = e.shutdown(context.Background()); <-done }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(post("{}"))
	<-started
	c.Close()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the handler's context: %v; want it cancelled when the caller hung up", err)
	}
}

// Shutdown closes idle connections at once, lets a request in progress
// finish (its answer says Connection: close), then returns.
func TestLeanShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "slow" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serveLean(ctx, wrapListener(ln), h, func() bool { return true }, &http.Server{Handler: h}, nil)
	}()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = idle.Write([]byte("GET /score HTTP/1.1\r\nHost: r\r\n\r\n"))
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first answer: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, _ = busy.Write([]byte("GET /score?slow HTTP/1.1\r\nHost: r\r\n\r\n"))
	<-started
	cancel()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection after shutdown began: read %d, %v; want EOF", n, err)
	}
	close(release)
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the request in progress: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "done" || !resp.Close {
		t.Errorf("the request in progress got %q, close %v; want done and Connection: close", body, resp.Close)
	}
	if err := <-served; err != nil {
		t.Errorf("serveLean: %v", err)
	}
}

// A head that does not arrive within the header timeout closes the
// connection, without an answer (as net/http).
func TestLeanHeaderTimeout(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := newLeanEngine(wrapListener(ln), h, func() bool { return true }, &http.Server{Handler: h, ReadHeaderTimeout: 200 * time.Millisecond})
	done := make(chan struct{})
	go func() { defer close(done); _ = e.accept() }()
	defer func() { _ = e.shutdown(context.Background()); <-done }()
	for _, first := range []bool{true, false} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if !first {
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: r\r\n\r\n"))
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = c.Write([]byte("POST /score HTTP/1.1\r\nHost: r\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, err := io.ReadAll(c)
		if err != nil || len(rest) > 0 {
			t.Errorf("first request %v: after a stalled head: %q, %v; want the connection closed", first, rest, err)
		}
		c.Close()
	}
}

// A large body grows the connection's buffer for its request only.
func TestLeanBufferShrinksAfterLargeBody(t *testing.T) {
	t.Parallel()
	p := startLeanPair(t)
	p.sc = script{{op: 'r', n: 1 << 20}, {op: 'w', val: "ok", n: 1}}
	c, err := net.Dial("tcp", p.lean)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, size := range []int{leanMaxBody, 10} {
		go func() { _, _ = c.Write(post(strings.Repeat("b", size))) }()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	p.e.conns.Each(func(lc *leanConn) {
		if lc.rb.Size() > leanReadBuffer {
			t.Errorf("read buffer after a large request: %d bytes, want %d", lc.rb.Size(), leanReadBuffer)
		}
	})
	if p.e.handedOver.Load() != 0 {
		t.Errorf("%d connections handed over; want 0", p.e.handedOver.Load())
	}
}

// startLean runs the lean engine alone on h with the given timeouts.
func startLean(t *testing.T, h http.Handler, idle, body time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := newLeanEngine(wrapListener(ln), h, func() bool { return true }, &http.Server{Handler: h, IdleTimeout: idle})
	e.bodyTimeout = body
	done := make(chan struct{})
	go func() { defer close(done); _ = e.accept() }()
	t.Cleanup(func() { _ = e.shutdown(context.Background()); <-done })
	return ln.Addr().String()
}

// A kept-alive connection that sends nothing for the idle timeout is
// closed; one that keeps sending is not (its deadline is renewed).
func TestLeanIdleTimeout(t *testing.T) {
	t.Parallel()
	addr := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		400*time.Millisecond, time.Minute)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	// Requests 100 ms apart for well past the idle timeout.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range 12 {
		if _, err := c.Write([]byte("GET /score HTTP/1.1\r\nHost: r\r\n\r\n")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on a busy connection: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		<-tick.C
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("an idle connection: read %d, %v; want it closed (EOF)", n, err)
	}
}

// A body that stops arriving is cut off after the body timeout, without an
// answer.
func TestLeanBodyTimeout(t *testing.T) {
	t.Parallel()
	called := make(chan struct{}, 1)
	addr := startLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called <- struct{}{} }),
		time.Minute, 300*time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("POST /score HTTP/1.1\r\nHost: r\r\nContent-Length: 10\r\n\r\nabc"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(c)
	if err != nil || len(rest) > 0 {
		t.Errorf("after a stalled body: %q, %v; want the connection closed", rest, err)
	}
	select {
	case <-called:
		t.Error("the handler was called for an unfinished body")
	default:
	}
}
