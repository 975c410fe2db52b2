package wire

import (
	"bytes"
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpguts"
)

// Validation of request heads on the event loop, so that it refuses what
// net/http refuses, with the same status codes:
//
//	400  a malformed request line, target (as url.ParseRequestURI reads
//	     it) or HTTP version, a header name that is
//	     not a token, a control byte in a value, a missing, repeated,
//	     empty or malformed Host (HTTP/1.1), two different Content-Lengths
//	     or one that is not a number (an empty Host is refused by
//	     ServeHTTP too, where net/http would pass it on)
//	501  a Transfer-Encoding other than chunked
//	505  an HTTP version other than 1.x
//
// in net/http's order: a malformed line (or a second Host) as it arrives;
// once the head is complete, the framing (501, then a bad Content-Length),
// then 505, then a missing, empty or malformed Host or a blank in a header
// name (400).
//
// As net/http does, it serves HTTP/1.2 and later minor versions as
// HTTP/1.1, reads "PRI * HTTP/2.0" (the HTTP/2 preface) as a request, and
// the loop skips up to 4 stray CR or LF bytes after a POST.
//
// It is stricter than net/http in one respect, as RFC 9112 allows: a line
// ending in a bare LF, or a header folded onto the next line, is refused
// with 400 (net/http accepts both; replicas are sent clean CRLF messages
// either way).

// Problem is why a request head is refused; code 0 means it is fine
// (or, for a head still arriving, fine so far).
type Problem struct {
	Code int
	Msg  string
}

var (
	probBadRequest = Problem{http.StatusBadRequest, "Bad request"}
	probVersion    = Problem{http.StatusHTTPVersionNotSupported, "HTTP version not supported"}
	probCoding     = Problem{http.StatusNotImplemented, "Unsupported transfer encoding"}
	ProbTooLarge   = Problem{http.StatusRequestHeaderFieldsTooLarge, "Request header fields too large"}
)

// CheckHead checks the request head at the start of buf. complete says
// that buf holds the whole head (up to and including the blank line);
// otherwise only the lines already there are checked.
func CheckHead(buf []byte, complete bool) Problem {
	pos, n := 0, 0
	hosts := 0
	var length []byte
	coding := false
	http11 := true
	// Refused once the head is all there, in net/http's order: the
	// framing (a Transfer-Encoding other than chunked, then a bad
	// Content-Length), then an HTTP version other than 1.x, then a
	// missing or bad Host or a blank in a header name (which net/http's
	// parser takes). A malformed line is refused as it arrives.
	var te, cl, version, late Problem
	for {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			if complete {
				return probBadRequest
			}
			return Problem{}
		}
		if i == 0 || buf[pos+i-1] != '\r' {
			return probBadRequest // bare LF
		}
		line := buf[pos : pos+i-1]
		pos += i + 1
		if n == 0 {
			var p Problem
			http11, p = checkRequestLine(line)
			if p == probVersion {
				version = p
			} else if p.Code != 0 {
				return p
			}
			n++
			continue
		}
		n++
		if len(line) == 0 {
			break // the end of the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			return probBadRequest // folded
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			return probBadRequest
		}
		if !token(line[:c]) {
			if !token(bytes.ReplaceAll(line[:c], []byte(" "), nil)) {
				return probBadRequest
			}
			late = probBadRequest
		}
		name, v := line[:c], trimOWS(line[c+1:])
		if !httpguts.ValidHeaderFieldValue(string(v)) {
			return probBadRequest
		}
		switch {
		case bytes.EqualFold(name, []byte("host")):
			hosts++
			if hosts > 1 {
				return probBadRequest // before the framing, as net/http
			}
			// (An empty Host is refused by the router's handler, which
			// OPTIONS * does not reach.)
			if len(v) == 0 && http11 && !OptionsStar(buf) || !httpguts.ValidHostHeader(string(v)) {
				late = probBadRequest
			}
		case bytes.EqualFold(name, []byte("content-length")):
			if parseLength(v) < 0 || length != nil && !bytes.Equal(length, v) {
				cl = probBadRequest
			}
			length = v
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			if http11 && (coding || !bytes.EqualFold(v, []byte("chunked"))) {
				te = probCoding
			}
			coding = true
		}
	}
	if http11 && hosts == 0 {
		late = probBadRequest
	}
	for _, p := range []Problem{te, cl, version, late} {
		if p.Code != 0 {
			return p
		}
	}
	return Problem{}
}

// OptionsStar reports whether a request head starts "OPTIONS * ", the
// server-wide OPTIONS that net/http's server answers itself.
func OptionsStar(head []byte) bool { return bytes.HasPrefix(head, []byte("OPTIONS * ")) }

// checkRequestLine checks "METHOD SP TARGET SP HTTP/x.y" and reports
// whether the version is HTTP/1.1 or later; probVersion for a version
// other than 1.x.
func checkRequestLine(line []byte) (http11 bool, p Problem) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || !token(line[:sp1]) {
		return false, probBadRequest
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return false, probBadRequest
	}
	target := rest[:sp2]
	for i, c := range target {
		if c < ' ' || c == 0x7f {
			return false, probBadRequest
		}
		// A '%' not followed by two hex digits: net/http cannot parse
		// the URI.
		if c == '%' && (i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2])) {
			return false, probBadRequest
		}
	}
	// The target as net/http reads it (url.ParseRequestURI: a path, "*"
	// or an absolute URI; an authority for CONNECT).
	raw := string(target)
	if string(line[:sp1]) == http.MethodConnect && raw[0] != '/' {
		raw = "http://" + raw
	}
	if _, err := url.ParseRequestURI(raw); err != nil {
		return false, probBadRequest
	}
	v := rest[sp2+1:]
	if len(v) != len("HTTP/1.1") || string(v[:5]) != "HTTP/" || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return false, probBadRequest
	}
	if string(v) == "HTTP/2.0" && string(line[:sp1]) == "PRI" && string(target) == "*" {
		// The HTTP/2 preface, which net/http passes to the handler as
		// a request (closing the connection after the answer).
		return true, Problem{}
	}
	if v[5] != '1' {
		// (net/http frames an HTTP/0.0 request as HTTP/1.1.)
		return v[5] > '1' || string(v) == "HTTP/0.0", probVersion
	}
	return v[7] != '0', Problem{}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ExpectsContinue reports whether an Expect value asks for 100 Continue as
// net/http reads it: "100-continue" as a token anywhere in the value, case
// aside, bounded by the value's ends, a space, a comma or a tab. Any other
// Expect gets 417.
func ExpectsContinue(v []byte) bool {
	const tok = "100-continue"
	boundary := func(b byte) bool { return b == ' ' || b == ',' || b == '\t' }
	for i := 0; i+len(tok) <= len(v); i++ {
		if (i == 0 || boundary(v[i-1])) && (i+len(tok) == len(v) || boundary(v[i+len(tok)])) &&
			bytes.EqualFold(v[i:i+len(tok)], []byte(tok)) {
			return true
		}
	}
	return false
}
