package scoring

import "net/http"

// hdrKeyTraceparent is the W3C Trace Context header.
var hdrKeyTraceparent = http.CanonicalHeaderKey("traceparent")

// traceContext is the trace a request belongs to, from the caller's
// traceparent: lowercase hex, 32 digits of trace id and 16 of the
// caller's span id.
type traceContext struct {
	traceID, parentID string
}

// parseTraceparent reads a W3C traceparent header value
// (https://www.w3.org/TR/trace-context/#traceparent-header):
// version-traceid-parentid-flags, two, 32, 16 and two lowercase hex
// digits. Version ff is invalid; version 00 has nothing after the flags; a
// later version may have more after a dash, which is ignored. An all-zero
// trace id or parent id is invalid. ok is false for anything else.
func parseTraceparent(v string) (tc traceContext, ok bool) {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return tc, false
	}
	version := v[:2]
	if !isLowerHex(version) || version == "ff" {
		return tc, false
	}
	if len(v) > 55 && (version == "00" || v[55] != '-') {
		return tc, false
	}
	tid, pid, flags := v[3:35], v[36:52], v[53:55]
	if !isLowerHex(tid) || !isLowerHex(pid) || !isLowerHex(flags) || allZero(tid) || allZero(pid) {
		return tc, false
	}
	return traceContext{traceID: tid, parentID: pid}, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// requestTrace is the trace context of a request, from its one
// traceparent header when that is valid.
func requestTrace(r *http.Request) (traceContext, bool) {
	v := r.Header[hdrKeyTraceparent]
	if len(v) != 1 {
		// None, or repeated: the header is then not to be trusted.
		return traceContext{}, false
	}
	return parseTraceparent(v[0])
}
