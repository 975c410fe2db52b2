package frontend

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"
)

// The lean path of the event-loop engine: the common request (GET or POST,
// HTTP/1.1, a body of known length, a plain path) and the common answer
// (HTTP/1.1 with Content-Length) are read by scanning their header lines
// once, and forwarded by copying the lines that pass, as nginx does, instead
// of being parsed into fasthttp's request and response and written out
// again. What the scan does not accept (chunked bodies, Expect, Upgrade,
// HTTP/1.0, percent-encoded or unnormalized paths, a route with mirroring,
// many headers) takes the general path with fasthttp's parser; both give
// callers and replicas the same message.

const maxLeanHeaders = 48

type leanStatus int

const (
	leanOK   leanStatus = iota
	leanMore            // the head is complete, the body is not
	leanNo              // not for the lean path
)

// span is a header line's [start, end) in the buffer, without its CRLF.
type span struct{ a, b int32 }

// headerKind classifies the header names the router acts on.
type headerKind int

const (
	hOther headerKind = iota
	hAuthorization
	hVersion
	hVersionAlias
	hCallerKey
	hContentLength
	hConnection
	hHopByHop  // dropped on the way through
	hNotLean   // Transfer-Encoding, Expect, Upgrade: the general path
	hHost      // replaced with the replica's
	hRequestID // replaced with the router's
	hServedBy  // replaced with the router's (answers)
)

// classify names a header by its kind, case-insensitively.
func classify(name []byte) headerKind {
	eq := func(s string) bool { return bytes.EqualFold(name, []byte(s)) }
	switch len(name) {
	case 2:
		if eq("te") {
			return hHopByHop
		}
	case 4:
		if eq("host") {
			return hHost
		}
	case 6:
		if eq("expect") {
			return hNotLean
		}
	case 7:
		if eq("upgrade") {
			return hNotLean
		}
		if eq("trailer") {
			return hHopByHop
		}
	case 10:
		if eq("connection") {
			return hConnection
		}
		if eq("keep-alive") {
			return hHopByHop
		}
	case 13:
		if eq("authorization") {
			return hAuthorization
		}
		if eq(HeaderVersion) {
			return hVersion
		}
	case 14:
		if eq("content-length") {
			return hContentLength
		}
	case 15:
		if eq(HeaderRequestID) {
			return hRequestID
		}
		if eq(HeaderServedBy) {
			return hServedBy
		}
	case 16:
		if eq(HeaderCallerKey) {
			return hCallerKey
		}
		if eq("proxy-connection") {
			return hHopByHop
		}
	case 17:
		if eq("transfer-encoding") {
			return hNotLean
		}
	case 18:
		if eq("proxy-authenticate") {
			return hHopByHop
		}
	case 19:
		if eq("proxy-authorization") {
			return hHopByHop
		}
	case 24:
		if eq(HeaderVersionAlias) {
			return hVersionAlias
		}
	}
	return hOther
}

// headerLines walks the header lines of head (which ends with the last
// line's CRLF), calling f with each name and value (value without
// surrounding blanks) and the line's span; f returns false to stop. It
// returns false for anything fasthttp's parser might read differently:
// bare LF, folded lines, a name with blanks or without a colon.
func headerLines(head []byte, from int, f func(name, value []byte, s span) bool) bool {
	pos := from
	for pos < len(head) {
		i := bytes.IndexByte(head[pos:], '\n')
		if i < 1 || head[pos+i-1] != '\r' {
			return false
		}
		line := head[pos : pos+i-1]
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			return false
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 || !token(line[:c]) || hasCTL(line[c+1:]) {
			return false
		}
		v := bytes.Trim(line[c+1:], " \t")
		if !f(line[:c], v, span{int32(pos), int32(pos + i - 1)}) {
			return false
		}
		pos += i + 1
	}
	return true
}

// tokenChar marks the bytes allowed in an HTTP token (a header name).
var tokenChar = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), byte(c)) < 0
	}
	return t
}()

// token reports whether b is an HTTP token (a header name).
func token(b []byte) bool {
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

// hasCTL reports whether a header value holds a control character other
// than a tab.
func hasCTL(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// plainHost reports whether v is a plain host[:port]: a name of letters,
// digits, dots, hyphens and underscores, or a bracketed IPv6 address, and
// an optional port of digits.
func plainHost(v []byte) bool {
	host, port := v, []byte(nil)
	if i := bytes.LastIndexByte(v, ':'); i >= 0 && bytes.IndexByte(v[i:], ']') < 0 {
		host, port = v[:i], v[i+1:]
		if len(port) == 0 || len(port) > 5 || parseLength(port) < 0 {
			return false
		}
	}
	if len(host) == 0 {
		return false
	}
	if host[0] == '[' {
		if host[len(host)-1] != ']' || len(host) < 3 {
			return false
		}
		for _, c := range host[1 : len(host)-1] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return false
			}
		}
		return true
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseLength reads a Content-Length value; -1 when it is not one.
func parseLength(v []byte) int {
	if len(v) == 0 || len(v) > 15 {
		return -1
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// hasToken reports whether a comma-separated header value holds tok.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if bytes.EqualFold(bytes.Trim(t, " \t"), []byte(tok)) {
			return true
		}
	}
	return false
}

// kept is the header lines to pass on.
type kept struct {
	keep  [maxLeanHeaders]span
	nkeep int
}

// add keeps a line; false when there are too many for the lean path.
func (k *kept) add(s span) bool {
	if k.nkeep == maxLeanHeaders {
		return false
	}
	k.keep[k.nkeep] = s
	k.nkeep++
	return true
}

func (k *kept) lines() []span { return k.keep[:k.nkeep] }

// setLength records a Content-Length; false for a second one or a bad value.
func setLength(length *int, v []byte) bool {
	if *length >= 0 {
		return false
	}
	*length = parseLength(v)
	return *length >= 0
}

// leanReq is a scanned request; its slices point into the read buffer.
type leanReq struct {
	method, path, query []byte // query with its '?', or empty
	auth, version       []byte
	alias, callerKey    []byte
	kept
	length     int // Content-Length, -1 when absent
	closeAfter bool
	hasHost    bool
	body       []byte
	n          int // bytes of the whole request
}

// scanRequest scans one request at the start of buf.
func scanRequest(buf []byte, maxBody int64, lr *leanReq) leanStatus {
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 || end+4 > maxHeaderBytes {
		return leanNo // the general path waits or refuses
	}
	head := buf[:end+2]
	le := bytes.Index(head, []byte("\r\n"))
	line := head[:le]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return leanNo
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || string(rest[sp2+1:]) != "HTTP/1.1" {
		return leanNo
	}
	if string(method) != "POST" && string(method) != "GET" {
		return leanNo
	}
	target := rest[:sp2]
	if target[0] != '/' || bytes.IndexByte(target, '#') >= 0 {
		return leanNo
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return leanNo
		}
	}
	path, query := target, []byte(nil)
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		path, query = target[:q], target[q:]
	}
	if bytes.IndexByte(path, '%') >= 0 || bytes.Contains(path, []byte("//")) || bytes.Contains(path, []byte("/.")) {
		return leanNo // fasthttp decodes and normalizes such paths
	}
	*lr = leanReq{method: method, path: path, query: query, length: -1}
	ok := headerLines(head, le+2, func(name, v []byte, s span) bool {
		switch classify(name) {
		case hAuthorization:
			if lr.auth == nil {
				lr.auth = v
			}
			return true
		case hVersion:
			if lr.version == nil {
				lr.version = v
			}
		case hVersionAlias:
			if lr.alias == nil {
				lr.alias = v
			}
		case hCallerKey:
			if lr.callerKey == nil {
				lr.callerKey = v
			}
		case hContentLength:
			return setLength(&lr.length, v)
		case hConnection:
			lr.closeAfter = lr.closeAfter || hasToken(v, "close")
			return true
		case hHost:
			if lr.hasHost || !plainHost(v) {
				return false // the general path refuses a second Host; fasthttp reads the URI differently
			}
			lr.hasHost = true
			return true
		case hHopByHop, hRequestID:
			return true
		case hNotLean:
			return false
		}
		return lr.add(s)
	})
	if !ok || !lr.hasHost {
		return leanNo // without Host, fasthttp's parser refuses it
	}
	body := max(lr.length, 0)
	if int64(body) > maxBody {
		return leanNo // the general path answers 413
	}
	start := end + 4
	if len(buf)-start < body {
		lr.n = start + body
		return leanMore
	}
	lr.body = buf[start : start+body]
	lr.n = start + body
	return leanOK
}

// leanPlan decides where the lean request lr goes, for both engines that
// scan requests (the event loop and the HTTPS engine): routed with its plan
// and path kind; refused, with resp (clean on entry) holding the router's
// answer; or general, for the general path (/metrics, a route with
// mirroring, which copies the parsed request, and a wait for a ready
// version), with resp to be reset.
func (rt *Router) leanPlan(lr *leanReq, resp *fasthttp.Response) (p plan, kind pathKind, routed, general bool) {
	if string(lr.path) == PathMetrics {
		return p, kind, false, true
	}
	r, versionB, kind, ok := rt.resolve(lr.path, lr.method, resp)
	if !ok {
		return p, kind, false, false
	}
	if len(r.mirrors) > 0 {
		return p, kind, false, true
	}
	p, ok = rt.choose(r, versionB, kind, lr.auth, lr.version, lr.alias, lr.callerKey, resp)
	return p, kind, ok, !ok && p.noReady
}

// appendUpstream appends the request for a replica: the scoring or swagger
// path with the caller's query, the replica as Host, the caller's headers
// but for Authorization and hop-by-hop ones, the router's request id.
func appendUpstream(dst, buf []byte, lr *leanReq, kind pathKind, host string, id []byte) []byte {
	dst = append(dst, lr.method...)
	if kind == kindScore {
		dst = append(dst, " /score"...)
	} else {
		dst = append(dst, " /swagger.json"...)
	}
	dst = append(dst, lr.query...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	for _, s := range lr.lines() {
		dst = append(dst, buf[s.a:s.b]...)
		dst = append(dst, "\r\n"...)
	}
	if lr.length >= 0 || string(lr.method) == "POST" {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(lr.body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "X-Ms-Request-Id: "...)
	dst = append(dst, id...)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, lr.body...)
}

// leanResp is a scanned answer; its spans point into the read buffer.
type leanResp struct {
	status span // "HTTP/1.1 200 OK"
	code   int
	kept
	length    int
	closeConn bool
	chunked   bool // Transfer-Encoding: chunked (scanChunkedResponse)
	start     int  // where the body starts
	body      span
	n         int
}

// scanResponse scans one answer at the start of buf.
func scanResponse(buf []byte, lr *leanResp) leanStatus {
	return scanAnswer(buf, lr, false)
}

// scanChunkedResponse reports whether buf starts with the complete head of
// an answer scanResponse would take but for its body being chunked
// ("Transfer-Encoding: chunked" and no Content-Length); lr.start is where
// its body starts.
func scanChunkedResponse(buf []byte, lr *leanResp) bool {
	return scanAnswer(buf, lr, true) == leanOK && lr.chunked
}

// scanAnswer scans an answer's head, taking a chunked one when chunked is
// set.
func scanAnswer(buf []byte, lr *leanResp, chunked bool) leanStatus {
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 || end+4 > upstreamReadBuffer {
		return leanNo
	}
	head := buf[:end+2]
	le := bytes.Index(head, []byte("\r\n"))
	line := head[:le]
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') || hasCTL(line) {
		return leanNo
	}
	code := parseLength(line[9:12])
	if code < 200 || code == 204 || code == 304 {
		return leanNo
	}
	*lr = leanResp{status: span{0, int32(le)}, code: code, length: -1}
	ok := headerLines(head, le+2, func(name, v []byte, s span) bool {
		switch classify(name) {
		case hContentLength:
			return setLength(&lr.length, v)
		case hConnection:
			lr.closeConn = lr.closeConn || hasToken(v, "close")
			return true
		case hHopByHop, hRequestID, hServedBy:
			return true
		case hNotLean:
			if chunked && !lr.chunked && bytes.EqualFold(name, []byte("Transfer-Encoding")) && bytes.EqualFold(v, []byte("chunked")) {
				lr.chunked = true
				return true
			}
			return false
		}
		return lr.add(s)
	})
	start := end + 4
	lr.start = start
	if chunked {
		if ok && lr.chunked && lr.length < 0 {
			return leanOK
		}
		return leanNo
	}
	if !ok || lr.length < 0 {
		return leanNo // chunked, or delimited by closing: the general path
	}
	if len(buf)-start < lr.length {
		return leanMore
	}
	lr.body = span{int32(start), int32(start + lr.length)}
	lr.n = start + lr.length
	return leanOK
}

// appendAnswer appends the caller's answer: a model's 500 as 502, the
// replica's headers but for hop-by-hop ones, the request id and the version
// that served it (the head as appendStreamHead writes it), then the body.
func appendAnswer(dst, buf []byte, lr *leanResp, id []byte, servedBy string, closeAfter bool) []byte {
	dst = appendStreamHead(dst, buf, lr, id, servedBy, closeAfter)
	return append(dst, buf[lr.body.a:lr.body.b]...)
}

// setLengthHeader makes the head written by appendUpstream for a request
// without its body (lr.body nil) announce a body of n bytes.
func setLengthHeader(head []byte, n int) []byte {
	const cl = "Content-Length: 0\r\n"
	i := bytes.LastIndex(head, []byte(cl))
	if i < 0 {
		return head
	}
	out := make([]byte, 0, len(head)+16)
	out = append(out, head[:i]...)
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, "\r\n"...)
	return append(out, head[i+len(cl):]...)
}
