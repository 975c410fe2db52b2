package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// fastRequest parses buf with fasthttp as the general path does.
func fastRequest(buf []byte) (*fasthttp.Request, int, error) {
	req := &fasthttp.Request{}
	rd := bytes.NewReader(buf)
	br := bufio.NewReaderSize(rd, MaxHeaderBytes)
	if err := req.Read(br); err != nil {
		return nil, 0, err
	}
	return req, len(buf) - rd.Len() - br.Buffered(), nil
}

func fastResponse(buf []byte) (*fasthttp.Response, int, error) {
	resp := &fasthttp.Response{}
	resp.Header.DisableNormalizing()
	rd := bytes.NewReader(buf)
	br := bufio.NewReaderSize(rd, MaxAnswerHead)
	if err := resp.Read(br); err != nil {
		return nil, 0, err
	}
	return resp, len(buf) - rd.Len() - br.Buffered(), nil
}

// checkLeanRequest compares the lean scan of buf with fasthttp's parse: a
// request the lean path takes must be one fasthttp reads the same way, and
// the request it sends on must carry the same message.
func checkLeanRequest(t *testing.T, buf []byte) {
	t.Helper()
	var lr Request
	if ScanRequest(buf, 1<<20, &lr) != OK {
		return
	}
	req, n, err := fastRequest(buf)
	if err != nil {
		// The lean path forwards it; the replica's own parser judges it.
		// That is only acceptable for header values fasthttp is stricter
		// about, never for framing.
		if strings.Contains(err.Error(), "content-length") || strings.Contains(err.Error(), "body") {
			t.Fatalf("lean took %q, fasthttp: %v", buf, err)
		}
		return
	}
	if n != lr.N {
		t.Fatalf("%q: lean length %d, fasthttp %d", buf, lr.N, n)
	}
	if !bytes.Equal(req.Body(), lr.Body) {
		t.Fatalf("%q: lean body %q, fasthttp %q", buf, lr.Body, req.Body())
	}
	if string(req.Header.Method()) != string(lr.Method) {
		t.Fatalf("%q: lean method %q, fasthttp %q", buf, lr.Method, req.Header.Method())
	}
	if p := req.URI().Path(); string(p) != string(lr.Path) {
		t.Fatalf("%q: lean path %q, fasthttp %q", buf, lr.Path, p)
	}
	req.Header.DisableNormalizing()
	for _, h := range []struct {
		name string
		lean []byte
	}{{"Authorization", lr.Auth}, {"Aksml-Version", lr.Version}, {"Azureml-Model-Deployment", lr.Alias}, {"Aksml-Caller-Key", lr.CallerKey}} {
		if got := req.Header.Peek(h.name); !bytes.Equal(got, h.lean) && (len(got) > 0 || len(h.lean) > 0) {
			t.Fatalf("%q: %s lean %q, fasthttp %q", buf, h.name, h.lean, got)
		}
	}
	if req.Header.ConnectionClose() != lr.CloseAfter {
		t.Fatalf("%q: close after: lean %v, fasthttp %v", buf, lr.CloseAfter, req.Header.ConnectionClose())
	}
	// What the replica gets: fasthttp must read the same body and query,
	// without the credentials.
	up := AppendUpstream(nil, buf, &lr, "/score", "127.0.0.1:1", []byte("id"))
	ureq, un, err := fastRequest(up)
	if err != nil || un != len(up) {
		t.Fatalf("%q: upstream request %q does not parse: %v (%d of %d bytes)", buf, up, err, un, len(up))
	}
	if !bytes.Equal(ureq.Body(), lr.Body) || string(ureq.URI().QueryString()) != string(req.URI().QueryString()) ||
		string(ureq.URI().Path()) != "/score" || len(ureq.Header.Peek("Authorization")) > 0 || string(ureq.Header.Peek("X-Ms-Request-Id")) != "id" {
		t.Fatalf("%q: upstream request %q", buf, up)
	}
}

func checkLeanResponse(t *testing.T, buf []byte) {
	t.Helper()
	checkChunkedResponse(t, buf)
	var lr Response
	if ScanResponse(buf, &lr) != OK {
		return
	}
	resp, n, err := fastResponse(buf)
	if err != nil {
		if strings.Contains(err.Error(), "content-length") || strings.Contains(err.Error(), "body") {
			t.Fatalf("lean took answer %q, fasthttp: %v", buf, err)
		}
		return
	}
	if n != lr.N || resp.StatusCode() != lr.Code || !bytes.Equal(resp.Body(), buf[lr.Body.A:lr.Body.B]) {
		t.Fatalf("%q: lean %d bytes, code %d, body %q; fasthttp %d, %d, %q", buf, lr.N, lr.Code, buf[lr.Body.A:lr.Body.B], n, resp.StatusCode(), resp.Body())
	}
	out := AppendAnswer(nil, buf, &lr, []byte("id"), "v1", true)
	cresp, cn, err := fastResponse(out)
	if err != nil || cn != len(out) {
		t.Fatalf("%q: caller's answer %q does not parse: %v", buf, out, err)
	}
	want := lr.Code
	if want == 500 {
		want = 502
	}
	if cresp.StatusCode() != want || !bytes.Equal(cresp.Body(), resp.Body()) || !cresp.ConnectionClose() ||
		string(cresp.Header.Peek("Aksml-Served-By")) != "v1" {
		t.Fatalf("%q: caller's answer %q", buf, out)
	}
}

var leanRequestSeeds = []string{
	"POST /api/v1/service/a/score?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\nContent-Length: 2\r\n\r\n{}",
	"GET /api/v1/service/a/swagger.json HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n",
	"POST /api/v1/service/a/score HTTP/1.1\r\nhost: h\r\naksml-version: v2\r\nAksml-Caller-Key: c\r\ncontent-length: 0\r\n\r\n",
	"POST /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
	"POST /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\nX:  spaced \t\r\nAzureml-Model-Deployment: blue\r\nContent-Length: 1\r\n\r\nz",
	"POST /api/v1/service/a/score HTTP/1.0\r\nHost: h\r\n\r\n",
	"POST /api/v1/service/a%2f/score HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab",
}

var leanResponseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom",
	"HTTP/1.1 200\r\nContent-Length: 0\r\nX-Ms-Request-Id: theirs\r\nKeep-Alive: timeout=5\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\nuntil close",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
}

func TestLeanScanners(t *testing.T) {
	for _, s := range leanRequestSeeds {
		checkLeanRequest(t, []byte(s))
	}
	for _, s := range leanResponseSeeds {
		checkLeanResponse(t, []byte(s))
	}
	// What takes the general path, and what waits for more.
	cases := []struct {
		req  string
		want Status
	}{
		{leanRequestSeeds[0], OK},
		{leanRequestSeeds[3], No},   // two Content-Lengths
		{leanRequestSeeds[4], No},   // chunked
		{leanRequestSeeds[6], No},   // HTTP/1.0
		{leanRequestSeeds[7], No},   // percent-encoded path
		{leanRequestSeeds[8], More}, // body still arriving
		{"POST /api/v1/service/a/score HTTP/1.1\r\nContent-Length: 0\r\n\r\n", No}, // no Host
		{"POST /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\n Folded: x\r\n\r\n", No},
		{"POST /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", No},
		{"POST /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n", No}, // over the limit: 413 there
		{"PUT /api/v1/service/a/score HTTP/1.1\r\nHost: h\r\n\r\n", No},
	}
	for _, c := range cases {
		var lr Request
		if got := ScanRequest([]byte(c.req), 1<<20, &lr); got != c.want {
			t.Errorf("scanRequest(%q) = %v, want %v", c.req, got, c.want)
		}
	}
	var lr Request
	ScanRequest([]byte(leanRequestSeeds[0]), 1<<20, &lr)
	up := string(AppendUpstream(nil, []byte(leanRequestSeeds[0]), &lr, "/score", "10.0.0.1:5001", []byte("rid")))
	want := "POST /score?x=1 HTTP/1.1\r\nHost: 10.0.0.1:5001\r\nContent-Length: 2\r\nX-Ms-Request-Id: rid\r\n\r\n{}"
	if up != want {
		t.Errorf("upstream request\n got %q\nwant %q", up, want)
	}
	var rr Response
	if st := ScanResponse([]byte(leanResponseSeeds[2]), &rr); st != OK {
		t.Fatalf("scanResponse: %v", st)
	}
	ans := string(AppendAnswer(nil, []byte(leanResponseSeeds[2]), &rr, []byte("ours"), "blue", false))
	if want := "HTTP/1.1 200\r\nContent-Length: 0\r\nX-Ms-Request-Id: ours\r\nAksml-Served-By: blue\r\n\r\n"; ans != want {
		t.Errorf("answer\n got %q\nwant %q", ans, want)
	}
}

// FuzzLeanRequest checks the lean request scanner against fasthttp's parser
// on arbitrary bytes: whatever the lean path takes, fasthttp frames and reads
// the same way, and the request sent on parses back to the same message.
func FuzzLeanRequest(f *testing.F) {
	for _, s := range leanRequestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) { checkLeanRequest(t, buf) })
}

// FuzzLeanResponse does the same for replicas' answers.
func FuzzLeanResponse(f *testing.F) {
	for _, s := range leanResponseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) { checkLeanResponse(t, buf) })
}

// checkChunkedResponse checks a chunked answer streamed to the caller (its
// head by AppendStreamHead, its chunks decoded and sent on one per piece,
// as streamIn does) against fasthttp's reading of the replica's answer.
func checkChunkedResponse(t *testing.T, buf []byte) {
	t.Helper()
	var lr Response
	if !ScanChunkedResponse(buf, &lr) {
		return
	}
	resp, n, err := fastResponse(buf)
	out := AppendStreamHead(nil, buf, &lr, []byte("id"), "v1", false)
	var dec ChunkDecoder
	used, done, derr := dec.Feed(buf[lr.Start:], 1<<62, func(p []byte) error {
		out = fmt.Appendf(out, "%x\r\n%s\r\n", len(p), p)
		return nil
	})
	if err != nil || derr != nil || !done {
		if err == nil && derr != nil {
			t.Fatalf("%q: fasthttp reads it, the stream's decoder: %v", buf, derr)
		}
		return // both refuse it, or it is incomplete
	}
	if n != lr.Start+used {
		t.Fatalf("%q: the stream ends at %d, fasthttp at %d", buf, lr.Start+used, n)
	}
	out = append(out, "0\r\n\r\n"...)
	cresp, cn, err := fastResponse(out)
	if err != nil || cn != len(out) || !bytes.Equal(cresp.Body(), resp.Body()) || string(cresp.Header.Peek("Aksml-Served-By")) != "v1" {
		t.Fatalf("%q: caller's streamed answer %q: %v", buf, out, err)
	}
}

// TestHasCTL checks the word-at-a-time hasCTL against the plain byte loop,
// on every byte value at every position of values of every length to 24.
func TestHasCTL(t *testing.T) {
	for n := 1; n <= 24; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				v := bytes.Repeat([]byte("a"), n)
				v[pos] = byte(c)
				if got, want := hasCTL(v), hasCTLBytes(v); got != want {
					t.Fatalf("hasCTL(%q) = %v, want %v", v, got, want)
				}
				v[(pos+3)%n] = 0x80 | byte(c) // high bytes beside it
				if got, want := hasCTL(v), hasCTLBytes(v); got != want {
					t.Fatalf("hasCTL(%q) = %v, want %v", v, got, want)
				}
			}
		}
	}
}
