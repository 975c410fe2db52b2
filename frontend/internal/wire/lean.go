package wire

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// The lean path of the engines that scan requests (the event loop and the
// HTTPS engine): the common request (GET or POST,
// HTTP/1.1, a body of known length, a plain path) and the common answer
// (HTTP/1.1 with Content-Length) are read by scanning their header lines
// once, and forwarded by copying the lines that pass, as nginx does, instead
// of being parsed into fasthttp's request and response and written out
// again. What the scan does not accept (chunked bodies, Expect, Upgrade,
// HTTP/1.0, percent-encoded or unnormalized paths, a route with mirroring,
// many headers) takes the general path with fasthttp's parser; both give
// callers and replicas the same message.

const maxLeanHeaders = 48

// MaxHeaderBytes bounds a request's or an answer's header block: a
// caller's larger head gets 431.
const MaxHeaderBytes = 16 << 10

// MaxAnswerHead bounds a replica's answer's header block.
const MaxAnswerHead = 16 << 10

// CRLFCRLF ends a header block.
var CRLFCRLF = []byte("\r\n\r\n")

// Header names the scanners act on, as package frontend spells them
// (its tests check they agree).
const (
	HeaderVersion      = "aksml-version"
	HeaderVersionAlias = "azureml-model-deployment"
	HeaderCallerKey    = "aksml-caller-key"
	HeaderRequestID    = "x-ms-request-id"
	HeaderServedBy     = "aksml-served-by"
)

// Status is a lean scan's verdict.
type Status int

const (
	OK   Status = iota
	More        // the head is complete, the body is not
	No          // not for the lean path
)

// span is a header line's [start, end) in the buffer, without its CRLF.
type Span struct{ A, B int32 }

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
func headerLines(head []byte, from int, f func(name, value []byte, s Span) bool) bool {
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
		v := trimOWS(line[c+1:])
		if !f(line[:c], v, Span{int32(pos), int32(pos + i - 1)}) {
			return false
		}
		pos += i + 1
	}
	return true
}

// trimOWS cuts the optional white space (blanks and tabs) around a header
// value: bytes.Trim(v, " \t") without building its cutset on each call.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
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
// than a tab. It looks at eight bytes at a time and at single bytes only
// in a word that may hold one (or a tab).
func hasCTL(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// A byte below 0x20, or equal to 0x7f, in w (exact as a whole).
		if (w-0x20*ones)&^w&highs != 0 || (w^0x7f*ones-ones)&^(w^0x7f*ones)&highs != 0 {
			if hasCTLBytes(b[:8]) {
				return true
			}
		}
		b = b[8:]
	}
	return hasCTLBytes(b)
}

func hasCTLBytes(b []byte) bool {
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
		if bytes.EqualFold(trimOWS(t), []byte(tok)) {
			return true
		}
	}
	return false
}

// kept is the header lines to pass on.
type kept struct {
	keep  [maxLeanHeaders]Span
	nkeep int
}

// add keeps a line; false when there are too many for the lean path.
func (k *kept) add(s Span) bool {
	if k.nkeep == maxLeanHeaders {
		return false
	}
	k.keep[k.nkeep] = s
	k.nkeep++
	return true
}

func (k *kept) Lines() []Span { return k.keep[:k.nkeep] }

// setLength records a Content-Length; false for a second one or a bad value.
func setLength(length *int, v []byte) bool {
	if *length >= 0 {
		return false
	}
	*length = parseLength(v)
	return *length >= 0
}

// Request is a scanned request; its slices point into the read buffer.
type Request struct {
	Method, Path, Query []byte // query with its '?', or empty
	Auth, Version       []byte
	Alias, CallerKey    []byte
	kept
	Length     int // Content-Length, -1 when absent
	CloseAfter bool
	HasHost    bool
	Body       []byte
	N          int // bytes of the whole request
}

// ScanRequest scans one request at the start of buf.
func ScanRequest(buf []byte, maxBody int64, lr *Request) Status {
	end := bytes.Index(buf, CRLFCRLF)
	if end < 0 || end+4 > MaxHeaderBytes {
		return No // the general path waits or refuses
	}
	head := buf[:end+2]
	le := bytes.Index(head, []byte("\r\n"))
	line := head[:le]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return No
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 || string(rest[sp2+1:]) != "HTTP/1.1" {
		return No
	}
	if string(method) != "POST" && string(method) != "GET" {
		return No
	}
	target := rest[:sp2]
	if target[0] != '/' || bytes.IndexByte(target, '#') >= 0 {
		return No
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return No
		}
	}
	path, query := target, []byte(nil)
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		path, query = target[:q], target[q:]
	}
	if bytes.IndexByte(path, '%') >= 0 || bytes.Contains(path, []byte("//")) || bytes.Contains(path, []byte("/.")) {
		return No // fasthttp decodes and normalizes such paths
	}
	*lr = Request{Method: method, Path: path, Query: query, Length: -1}
	ok := headerLines(head, le+2, func(name, v []byte, s Span) bool {
		switch classify(name) {
		case hAuthorization:
			if lr.Auth == nil {
				lr.Auth = v
			}
			return true
		case hVersion:
			if lr.Version == nil {
				lr.Version = v
			}
		case hVersionAlias:
			if lr.Alias == nil {
				lr.Alias = v
			}
		case hCallerKey:
			if lr.CallerKey == nil {
				lr.CallerKey = v
			}
		case hContentLength:
			return setLength(&lr.Length, v)
		case hConnection:
			lr.CloseAfter = lr.CloseAfter || hasToken(v, "close")
			return true
		case hHost:
			if lr.HasHost || !plainHost(v) {
				return false // the general path refuses a second Host; fasthttp reads the URI differently
			}
			lr.HasHost = true
			return true
		case hHopByHop, hRequestID:
			return true
		case hNotLean:
			return false
		}
		return lr.add(s)
	})
	if !ok || !lr.HasHost {
		return No // without Host, fasthttp's parser refuses it
	}
	body := max(lr.Length, 0)
	if int64(body) > maxBody {
		return No // the general path answers 413
	}
	start := end + 4
	if len(buf)-start < body {
		lr.N = start + body
		return More
	}
	lr.Body = buf[start : start+body]
	lr.N = start + body
	return OK
}

// Response is a scanned answer; its spans point into the read buffer.
type Response struct {
	Status Span // "HTTP/1.1 200 OK"
	Code   int
	kept
	Length    int
	CloseConn bool
	Chunked   bool // Transfer-Encoding: chunked (ScanChunkedResponse)
	Start     int  // where the body starts
	Body      Span
	N         int
}

// ScanResponse scans one answer at the start of buf.
func ScanResponse(buf []byte, lr *Response) Status {
	return scanAnswer(buf, lr, false)
}

// ScanChunkedResponse reports whether buf starts with the complete head of
// an answer ScanResponse would take but for its body being chunked
// ("Transfer-Encoding: chunked" and no Content-Length); lr.start is where
// its body starts.
func ScanChunkedResponse(buf []byte, lr *Response) bool {
	return scanAnswer(buf, lr, true) == OK && lr.Chunked
}

// scanAnswer scans an answer's head, taking a chunked one when chunked is
// set.
func scanAnswer(buf []byte, lr *Response, chunked bool) Status {
	end := bytes.Index(buf, CRLFCRLF)
	if end < 0 || end+4 > MaxAnswerHead {
		return No
	}
	head := buf[:end+2]
	le := bytes.Index(head, []byte("\r\n"))
	line := head[:le]
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') || hasCTL(line) {
		return No
	}
	code := parseLength(line[9:12])
	if code < 200 || code == 204 || code == 304 {
		return No
	}
	*lr = Response{Status: Span{0, int32(le)}, Code: code, Length: -1}
	ok := headerLines(head, le+2, func(name, v []byte, s Span) bool {
		switch classify(name) {
		case hContentLength:
			return setLength(&lr.Length, v)
		case hConnection:
			lr.CloseConn = lr.CloseConn || hasToken(v, "close")
			return true
		case hHopByHop, hRequestID, hServedBy:
			return true
		case hNotLean:
			if chunked && !lr.Chunked && bytes.EqualFold(name, []byte("Transfer-Encoding")) && bytes.EqualFold(v, []byte("chunked")) {
				lr.Chunked = true
				return true
			}
			return false
		}
		return lr.add(s)
	})
	start := end + 4
	lr.Start = start
	if chunked {
		if ok && lr.Chunked && lr.Length < 0 {
			return OK
		}
		return No
	}
	if !ok || lr.Length < 0 {
		return No // chunked, or delimited by closing: the general path
	}
	if len(buf)-start < lr.Length {
		return More
	}
	lr.Body = Span{int32(start), int32(start + lr.Length)}
	lr.N = start + lr.Length
	return OK
}

// AppendAnswer appends the caller's answer: a model's 500 as 502, the
// replica's headers but for hop-by-hop ones, the request id and the version
// that served it (the head as AppendStreamHead writes it), then the body.
func AppendAnswer(dst, buf []byte, lr *Response, id []byte, servedBy string, closeAfter bool) []byte {
	dst = AppendStreamHead(dst, buf, lr, id, servedBy, closeAfter)
	return append(dst, buf[lr.Body.A:lr.Body.B]...)
}

// SetLengthHeader makes the head written by AppendUpstream for a request
// without its body (lr.body nil) announce a body of n bytes.
func SetLengthHeader(head []byte, n int) []byte {
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

// AppendStreamHead appends the head of a streamed answer: as AppendAnswer
// writes it, announcing the replica's Content-Length or a chunked body.
func AppendStreamHead(dst, buf []byte, lr *Response, id []byte, servedBy string, closeAfter bool) []byte {
	if lr.Code == 500 {
		dst = append(dst, "HTTP/1.1 502 Bad Gateway"...)
	} else {
		dst = append(dst, buf[lr.Status.A:lr.Status.B]...)
	}
	dst = append(dst, "\r\n"...)
	for _, s := range lr.Lines() {
		dst = append(dst, buf[s.A:s.B]...)
		dst = append(dst, "\r\n"...)
	}
	if lr.Chunked {
		dst = append(dst, "Transfer-Encoding: chunked"...)
	} else {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(lr.Length), 10)
	}
	dst = append(dst, "\r\nX-Ms-Request-Id: "...)
	dst = append(dst, id...)
	dst = append(dst, "\r\nAksml-Served-By: "...)
	dst = append(dst, servedBy...)
	if closeAfter {
		dst = append(dst, "\r\nConnection: close"...)
	}
	return append(dst, "\r\n\r\n"...)
}

// AppendUpstream appends the request for a replica: path (its scoring or
// swagger path) with the caller's query, the replica as Host, the caller's headers
// but for Authorization and hop-by-hop ones, the router's request id.
func AppendUpstream(dst, buf []byte, lr *Request, path, host string, id []byte) []byte {
	dst = append(dst, lr.Method...)
	dst = append(dst, ' ')
	dst = append(dst, path...)
	dst = append(dst, lr.Query...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	for _, s := range lr.Lines() {
		dst = append(dst, buf[s.A:s.B]...)
		dst = append(dst, "\r\n"...)
	}
	if lr.Length >= 0 || string(lr.Method) == "POST" {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(lr.Body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "X-Ms-Request-Id: "...)
	dst = append(dst, id...)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, lr.Body...)
}
