package scoring

import (
	"bufio"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// leanWriter is the lean engine's http.ResponseWriter. It follows
// net/http's response and chunkWriter (server.go) rule for rule, so that an
// answer is the same bytes on both paths: the handler's writes go through a
// 2048-byte buffer (net/http's bufferBeforeChunkingSize); the header is
// written when that buffer first spills, on Flush or when the handler
// returns, with a Content-Length computed when the whole body was buffered,
// a sniffed Content-Type, Date, and chunked encoding when the length is not
// known. The answer collects in the connection's out buffer and goes to the
// socket with one write when the handler returns (or on Flush, or past
// leanOutSpill bytes).
type leanWriter struct {
	c   *leanConn
	req *http.Request

	handlerHeader http.Header
	calledHeader  bool
	cwHeader      http.Header // the header as of WriteHeader; nil until then
	snap          http.Header // cwHeader's map, reused
	snapVals      []string    // its values

	wroteHeader     bool
	status          int
	contentLength   int64
	written         int64
	handlerDone     bool
	closeAfterReply bool
	trailers        []string // declared in the Trailer header

	bw *bufio.Writer // over cw
	cw leanChunkWriter

	werr error
	keys []string
	clen [20]byte
}

// leanOutSpill is how much of an answer collects before it is written.
const leanOutSpill = 64 << 10

// leanChunkWriter is net/http's chunkWriter: it writes the header before
// the first bytes of the body, and the body chunked when its length is not
// known.
type leanChunkWriter struct {
	w           *leanWriter
	wroteHeader bool
	chunking    bool
}

func (w *leanWriter) init(c *leanConn) {
	w.c = c
	w.handlerHeader = http.Header{}
	w.snap = http.Header{}
	w.cw.w = w
	w.bw = bufio.NewWriterSize(&w.cw, 2048)
}

// reset readies the writer for request r.
func (w *leanWriter) reset(r *http.Request) {
	clear(w.handlerHeader)
	*w = leanWriter{c: w.c, req: r, handlerHeader: w.handlerHeader, snap: w.snap, snapVals: w.snapVals, bw: w.bw,
		contentLength: -1, trailers: w.trailers[:0], keys: w.keys[:0]}
	w.cw = leanChunkWriter{w: w}
	w.bw.Reset(&w.cw)
	w.closeAfterReply = r.Close
}

// Header implements http.ResponseWriter.
func (w *leanWriter) Header() http.Header {
	if w.cwHeader == nil && w.wroteHeader && !w.cw.wroteHeader {
		w.cwHeader = w.clone()
	}
	w.calledHeader = true
	return w.handlerHeader
}

func (w *leanWriter) clone() http.Header {
	clear(w.snap)
	// The values share one backing array, kept from answer to answer (a
	// value slice is never appended to: each is capped at its length).
	vals := w.snapVals[:0]
	for k, v := range w.handlerHeader {
		n := len(vals)
		vals = append(vals, v...)
		w.snap[k] = vals[n:len(vals):len(vals)]
	}
	w.snapVals = vals
	return w.snap
}

// WriteHeader implements http.ResponseWriter.
func (w *leanWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// An informational answer goes out at once; the final one follows.
		w.c.out = appendStatusLine(w.c.out, code)
		w.c.out = w.appendHeader(w.c.out, w.handlerHeader, excludedNoBody)
		w.c.out = append(w.c.out, "\r\n"...)
		w.c.flushOut()
		return
	}
	w.wroteHeader = true
	w.status = code
	if w.calledHeader && w.cwHeader == nil {
		w.cwHeader = w.clone()
	}
	if cl := first(w.handlerHeader["Content-Length"]); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.handlerHeader.Del("Content-Length")
		}
	}
}

// Write implements http.ResponseWriter.
func (w *leanWriter) Write(p []byte) (int, error) {
	if ok, err := w.admit(len(p)); !ok {
		return 0, err
	}
	return w.bw.Write(p)
}

// WriteString lets io.WriteString write without a copy to []byte.
func (w *leanWriter) WriteString(s string) (int, error) {
	if ok, err := w.admit(len(s)); !ok {
		return 0, err
	}
	return w.bw.WriteString(s)
}

// admit applies net/http's rules to a write of n body bytes: the header
// goes first (200 unless set), an empty write writes nothing, and the
// status and the declared Content-Length bound the body.
func (w *leanWriter) admit(n int) (bool, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n == 0 {
		return false, nil
	}
	if !bodyAllowed(w.status) {
		return false, http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return false, http.ErrContentLength
	}
	return true, nil
}

// FlushError sends what the answer has so far (http.ResponseController's
// Flush).
func (w *leanWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.bw.Flush()
	if !w.cw.wroteHeader {
		w.cw.writeHeader(nil)
	}
	w.c.flushOut()
	if err == nil {
		err = w.werr
	}
	return err
}

// Flush implements http.Flusher.
func (w *leanWriter) Flush() { _ = w.FlushError() }

// finish ends the answer after the handler returned (net/http's
// finishRequest); the caller writes c.out.
func (w *leanWriter) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.bw.Flush()
	if !w.cw.wroteHeader {
		w.cw.writeHeader(nil)
	}
	if w.cw.chunking {
		w.c.out = append(w.c.out, "0\r\n"...)
		if t := w.finalTrailers(); t != nil {
			w.c.out = w.appendHeader(w.c.out, t, nil)
		}
		w.c.out = append(w.c.out, "\r\n"...)
	}
}

// shouldReuse reports whether the connection stays open after the answer.
func (w *leanWriter) shouldReuse() bool {
	if w.closeAfterReply {
		return false
	}
	if w.contentLength != -1 && bodyAllowed(w.status) && w.contentLength != w.written {
		return false // the caller cannot tell where this answer ends
	}
	return w.werr == nil && !w.c.body.early
}

// finalTrailers are the trailers the handler declared or set with
// http.TrailerPrefix.
func (w *leanWriter) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, found := strings.CutPrefix(k, http.TrailerPrefix); found {
			if t == nil {
				t = http.Header{}
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = http.Header{}
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

func (cw *leanChunkWriter) Write(p []byte) (int, error) {
	w := cw.w
	if !cw.wroteHeader {
		cw.writeHeader(p)
	}
	if cw.chunking {
		w.c.out = strconv.AppendInt(w.c.out, int64(len(p)), 16)
		w.c.out = append(w.c.out, "\r\n"...)
	}
	w.c.out = append(w.c.out, p...)
	if cw.chunking {
		w.c.out = append(w.c.out, "\r\n"...)
	}
	if len(w.c.out) >= leanOutSpill {
		w.c.flushOut()
	}
	if w.werr != nil {
		return len(p), w.werr
	}
	return len(p), nil
}

var excludedNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

// writeHeader appends the status line and header, deciding the framing
// from p, the first bytes of the body (net/http's chunkWriter.writeHeader).
func (cw *leanChunkWriter) writeHeader(p []byte) {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true
	w := cw.w
	keepAlives := !w.c.e.conns.Closing()

	header := w.cwHeader
	owned := header != nil
	if !owned {
		header = w.handlerHeader
	}
	var exclude map[string]bool
	delHeader := func(key string) {
		if owned {
			header.Del(key)
			return
		}
		if _, ok := header[key]; !ok {
			return
		}
		if exclude == nil {
			exclude = map[string]bool{}
		}
		exclude[key] = true
	}
	var extra struct {
		contentType, connection, transferEncoding string
		contentLength                             []byte
		date                                      bool
	}

	trailers := false
	for k := range w.cwHeader {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if exclude == nil {
				exclude = map[string]bool{}
			}
			exclude[k] = true
			trailers = true
		}
	}
	for _, v := range w.cwHeader["Trailer"] {
		trailers = true
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				if f = http.CanonicalHeaderKey(f); httpguts.ValidTrailerHeader(f) {
					w.trailers = append(w.trailers, f)
				}
			}
		}
	}

	te := first(header["Transfer-Encoding"])
	hasTE := te != ""

	if w.handlerDone && !trailers && !hasTE && bodyAllowed(w.status) && !headerHas(header, "Content-Length") {
		w.contentLength = int64(len(p))
		extra.contentLength = strconv.AppendInt(w.clen[:0], int64(len(p)), 10)
	}
	hasCL := w.contentLength != -1
	if first(header["Connection"]) == "close" || !keepAlives {
		w.closeAfterReply = true
	}

	if w.req.ContentLength != 0 && !w.closeAfterReply {
		// As net/http, once the answer starts the rest of the body is
		// dropped and the body closed (the handler can read no more),
		// unless much is left: then the connection closes after the
		// answer.
		b := &w.c.body
		switch {
		case b.closed:
			w.closeAfterReply = b.early
		case b.unread() >= maxPostHandlerRead:
			w.closeAfterReply = true
			delHeader("Connection")
			extra.connection = "close"
		default:
			b.pos, b.closed = len(b.b), true
		}
	}

	code := w.status
	if bodyAllowed(code) {
		_, haveType := header["Content-Type"]
		hasCE := len(header.Get("Content-Encoding")) > 0
		if !hasCE && !haveType && !hasTE && len(p) > 0 {
			extra.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressedHeaders(code) {
			delHeader(k)
		}
	}
	if !headerHas(header, "Date") {
		extra.date = true
	}
	if hasCL && hasTE && te != "identity" {
		delHeader("Content-Length")
		hasCL = false
	}
	switch {
	case !bodyAllowed(code) || code == http.StatusNoContent:
		delHeader("Transfer-Encoding")
	case hasCL:
		delHeader("Transfer-Encoding")
	case hasTE && te == "identity":
		cw.chunking = false
		w.closeAfterReply = true
		delHeader("Transfer-Encoding")
	default:
		cw.chunking = true
		extra.transferEncoding = "chunked"
		if hasTE && te == "chunked" {
			delHeader("Transfer-Encoding")
		}
	}
	if cw.chunking {
		delHeader("Content-Length")
	}
	if w.closeAfterReply && (!keepAlives || !hasToken(first(w.cwHeader["Connection"]), "close")) &&
		!(w.status == http.StatusSwitchingProtocols && first(header["Upgrade"]) != "") {
		delHeader("Connection")
		extra.connection = "close"
	}

	out := appendStatusLine(w.c.out, code)
	out = w.appendHeader(out, w.cwHeader, exclude)
	if extra.date {
		out = append(out, "Date: "...)
		out = appendDate(out)
		out = append(out, "\r\n"...)
	}
	if extra.contentLength != nil {
		out = append(out, "Content-Length: "...)
		out = append(out, extra.contentLength...)
		out = append(out, "\r\n"...)
	}
	for _, kv := range [...][2]string{{"Content-Type", extra.contentType}, {"Connection", extra.connection},
		{"Transfer-Encoding", extra.transferEncoding}} {
		if kv[1] != "" {
			out = append(out, kv[0]...)
			out = append(out, ": "...)
			out = append(out, kv[1]...)
			out = append(out, "\r\n"...)
		}
	}
	w.c.out = append(out, "\r\n"...)
}

// appendHeader appends h's lines in net/http's order (sorted by name),
// without the names in exclude and names that are not valid, with each
// value's line breaks turned to spaces and its surrounding white space
// trimmed.
func (w *leanWriter) appendHeader(out []byte, h http.Header, exclude map[string]bool) []byte {
	keys := w.keys[:0]
	for k := range h {
		if !exclude[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
			}
			v = textproto.TrimString(v)
			out = append(out, k...)
			out = append(out, ": "...)
			out = append(out, v...)
			out = append(out, "\r\n"...)
		}
	}
	w.keys = keys[:0]
	return out
}

func appendStatusLine(out []byte, code int) []byte {
	if text := http.StatusText(code); text != "" {
		out = append(out, "HTTP/1.1 "...)
		out = strconv.AppendInt(out, int64(code), 10)
		out = append(out, ' ')
		out = append(out, text...)
		return append(out, "\r\n"...)
	}
	out = append(out, "HTTP/1.1 "...)
	s := strconv.Itoa(code)
	out = append(out, strings.Repeat("0", max(0, 3-len(s)))...)
	out = append(out, s...)
	out = append(out, " status code "...)
	out = append(out, s...)
	return append(out, "\r\n"...)
}

func headerHas(h http.Header, key string) bool {
	_, ok := h[key]
	return ok
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}

func suppressedHeaders(status int) []string {
	switch {
	case status == http.StatusNotModified:
		return []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	case !bodyAllowed(status):
		return []string{"Content-Length", "Transfer-Encoding"}
	}
	return nil
}

// dateCache holds the Date header of the current second.
var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	sec  int64
	text []byte
}

// appendDate appends the current time in http.TimeFormat.
func appendDate(out []byte) []byte {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return append(out, d.text...)
	}
	text := now.UTC().AppendFormat(nil, http.TimeFormat)
	dateCache.Store(&cachedDate{sec: now.Unix(), text: text})
	return append(out, text...)
}
