package wire

import (
	"bytes"
	"math/rand/v2"
	"net/http"

	"github.com/valyala/fasthttp"
)

// What every engine shares beyond the lean scanners: the sizes at which a
// request or an answer stops being held whole, the router's own answers
// and request ids, and the replica's answer as the caller gets it when
// fasthttp's parser read it.

const (
	// SpillOver is the body size past which a request's body goes to a
	// spill file rather than memory.
	SpillOver = 1 << 20
	// AccumulateOver is how much of an incomplete request the event loop
	// leaves in a connection's read buffer, and how much of a chunked body any engine
	// holds in memory before it goes to a file.
	AccumulateOver = 64 << 10
	// StreamOver is how many bytes of an answer with a Content-Length may
	// still be due for it to be read whole before it is sent; a larger
	// one, or a chunked one, is forwarded as it arrives.
	StreamOver = 256 << 10
)

// Writer appends what is written to it to B: how fasthttp's writers
// serialize a message into a buffer.
type Writer struct{ B []byte }

func (w *Writer) Write(p []byte) (int, error) {
	w.B = append(w.B, p...)
	return len(p), nil
}

// AppendResponse appends resp as written by fasthttp, with Connection:
// close when the caller asked for it.
func AppendResponse(dst []byte, closeAfter bool, resp *fasthttp.Response) []byte {
	if closeAfter {
		resp.SetConnectionClose()
	}
	w := Writer{B: dst}
	_, _ = resp.WriteTo(&w) // fasthttp's pooled buffered writer
	return w.B
}

// NewRequestID appends a random (version 4) UUID to dst.
func NewRequestID(dst []byte) []byte {
	const hexd = "0123456789abcdef"
	a, b := rand.Uint64(), rand.Uint64()
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(a >> (8 * i))
		raw[8+i] = byte(b >> (8 * i))
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	for i, x := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexd[x>>4], hexd[x&15])
	}
	return dst
}

// SetRequestID gives resp a fresh request id.
func SetRequestID(resp *fasthttp.Response) {
	var idBuf [36]byte
	resp.Header.SetBytesV(HeaderRequestID, NewRequestID(idBuf[:0]))
}

// SetError makes resp a plain-text error.
func SetError(resp *fasthttp.Response, code int, msg string) {
	resp.Reset()
	resp.SetStatusCode(code)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	resp.SetBodyString(msg)
}

// HopHeaders are the hop-by-hop headers, which no message passes on.
var HopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

// answerDrops are the headers of a replica's answer that stay behind: the
// hop-by-hop ones and those the router sets itself.
var answerDrops = append(append([]string(nil), HopHeaders...), HeaderRequestID, HeaderServedBy)

// ReplicaAnswer turns a replica's answer into the caller's and returns its
// status code: a model's 500 reaches callers as 502, as on azureml-fe, and
// hop-by-hop headers stay behind.
func ReplicaAnswer(resp *fasthttp.Response) int {
	code := resp.StatusCode()
	if code == http.StatusInternalServerError {
		resp.SetStatusCode(http.StatusBadGateway)
		code = http.StatusBadGateway
	}
	stripHopHeaders(&resp.Header)
	return code
}

// stripHopHeaders removes hop-by-hop headers, and the request id and
// served-by headers the router sets, from a replica's answer, whose header
// names keep the replica's spelling.
func stripHopHeaders(h *fasthttp.ResponseHeader) {
	var found [10][]byte
	n := 0
	for k := range h.All() {
		if len(k) < 2 || len(k) > len("Proxy-Authenticate") {
			continue
		}
		for _, hop := range answerDrops {
			if len(k) == len(hop) && bytes.EqualFold(k, []byte(hop)) {
				if n < len(found) {
					found[n] = k
					n++
				}
				break
			}
		}
	}
	for _, k := range found[:n] {
		h.DelBytes(k)
	}
}

// PostSkip is how many CR or LF bytes are skipped before the request that
// follows one with this method: 4 after a POST, as net/http does for old
// clients that send a CRLF after a POST body (RFC 9112, section 2.2).
func PostSkip(method []byte) int {
	if string(method) == http.MethodPost {
		return 4
	}
	return 0
}

// SetUpstreamHost points the Host header of a request written for a
// replica (by AppendUpstream or fasthttp, both spell it "Host") at host.
func SetUpstreamHost(req []byte, host string) []byte {
	end := bytes.Index(req, CRLFCRLF)
	i := bytes.Index(req[:max(end, 0)], []byte("\r\nHost: "))
	if end < 0 || i < 0 {
		return req
	}
	v := i + len("\r\nHost: ")
	e := v + bytes.Index(req[v:], []byte("\r\n"))
	out := make([]byte, 0, len(req)-(e-v)+len(host))
	out = append(out, req[:v]...)
	out = append(out, host...)
	return append(out, req[e:]...)
}
