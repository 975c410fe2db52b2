package scoring

import (
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// requestIDLimit is the longest request id the server accepts, in bytes, as
// azmlinfsrv's HEADER_LIMIT.
const requestIDLimit = 100

var (
	hdrKeyRequestID       = http.CanonicalHeaderKey("x-request-id")
	hdrKeyMSRequestID     = http.CanonicalHeaderKey("x-ms-request-id")
	hdrKeyClientRequestID = http.CanonicalHeaderKey("x-ms-client-request-id")
	hdrKeyTraceID         = "Traceid" // canonical form of TraceId
	hdrKeyServerVersion   = http.CanonicalHeaderKey("x-ms-server-version")
	hdrKeyACAO            = "Access-Control-Allow-Origin"
)

// stampIDs sets the request id headers of a response to a request to one of
// the replica's routes, as azmlinfsrv does for every route: x-request-id (the
// caller's, or a new UUID), x-ms-request-id (the caller's, else the client
// request id, else the request id), x-ms-client-request-id (the caller's
// x-ms-client-request-id, else its x-ms-request-id), TraceId echoed, and the
// server version. It returns false after answering 431 when an id is longer
// than 100 characters.
func (s *Server) stampIDs(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	if !s.cfg.HideServerVersion {
		h[hdrKeyServerVersion] = s.serverVersion
	}
	if v, ok := r.Header["Traceid"]; ok && len(v) > 0 {
		h[hdrKeyTraceID] = v[:1]
	}
	s.cors.apply(h, r)
	var reqID string
	if v, ok := r.Header[hdrKeyRequestID]; ok && len(v) > 0 {
		reqID = v[0]
		if len(reqID) > requestIDLimit {
			writeError(w, http.StatusRequestHeaderFieldsTooLarge, "x-request-id must not exceed 100 characters", false)
			return false
		}
		if reqID != "" {
			h[hdrKeyRequestID] = v[:1]
		}
	} else {
		reqID = newRequestID()
		h[hdrKeyRequestID] = []string{reqID}
	}
	legacy := first(r.Header[hdrKeyMSRequestID])
	client := first(r.Header[hdrKeyClientRequestID])
	if legacy != "" {
		if client == "" {
			client = legacy
		}
	} else if client != "" {
		legacy = client
	} else {
		legacy = reqID
	}
	if len(legacy) > requestIDLimit || len(client) > requestIDLimit {
		writeError(w, http.StatusRequestHeaderFieldsTooLarge, "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters", false)
		return false
	}
	if legacy != "" {
		h[hdrKeyMSRequestID] = []string{legacy}
	}
	if client != "" {
		h[hdrKeyClientRequestID] = []string{client}
	}
	return true
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// mergeScriptHeaders puts the headers of a response that run() built (an
// AMLResponse) on h, which already holds the server's. A header the script
// sets replaces the server's default of the same name, as the script's
// response object carries only its own headers in azmlinfsrv; the request
// ids stay the server's (azmlinfsrv sets them after run()), TraceId and the
// server version are added to, and a script's own
// Access-Control-Allow-Origin turns the server's CORS headers off.
func (s *Server) mergeScriptHeaders(h http.Header, pairs [][2]string) {
	replaced := map[string]bool{}
	for _, kv := range pairs {
		if kv[0] == "" || !validHeader(kv[0], kv[1]) {
			continue
		}
		k := http.CanonicalHeaderKey(kv[0])
		switch k {
		case hdrKeyRequestID, hdrKeyMSRequestID, hdrKeyClientRequestID, "Content-Length", "Transfer-Encoding", "Connection":
			continue
		case hdrKeyACAO:
			if !replaced[k] {
				s.cors.remove(h)
			}
		case hdrKeyTraceID, hdrKeyServerVersion:
			replaced[k] = true // added to, not replaced
		}
		if !replaced[k] {
			delete(h, k)
			replaced[k] = true
		}
		h[k] = append(h[k], kv[1])
	}
}

// corsPolicy answers cross-origin requests as azmlinfsrv does with
// AML_CORS_ORIGINS (flask-cors with methods GET and POST): an allowed Origin
// is echoed in Access-Control-Allow-Origin; without an Origin header the
// allowed origins are listed ("*" when any origin is allowed); a preflight
// (OPTIONS with Access-Control-Request-Method GET or POST) also gets
// Access-Control-Allow-Methods and the requested headers. An origin entry
// holding '*', '\' or ']' is a regular expression matched at the start of
// the Origin, case-insensitively, and "*" alone allows every origin.
type corsPolicy struct {
	enabled  bool
	wildcard bool
	literal  []string         // plain entries
	patterns []*regexp.Regexp // regular-expression entries
	listed   []string         // sorted plain entries, sent without an Origin
	vary     bool
}

// newCORSPolicy builds the policy for origins (already split and trimmed);
// none means CORS is off.
func newCORSPolicy(origins []string) *corsPolicy {
	p := &corsPolicy{}
	if len(origins) == 0 {
		return p
	}
	p.enabled = true
	for _, o := range origins {
		if o == "*" {
			p.wildcard = true
			p.patterns = append(p.patterns, regexp.MustCompile(`(?i)^(?:.*)`))
			continue
		}
		if strings.ContainsAny(o, `*\]`) {
			if re, err := regexp.Compile(`(?i)^(?:` + o + `)`); err == nil {
				p.patterns = append(p.patterns, re)
				continue
			}
		}
		p.literal = append(p.literal, o)
	}
	p.listed = append([]string(nil), p.literal...)
	sort.Strings(p.listed)
	p.vary = len(origins) > 1 || len(p.patterns) > 0
	return p
}

// ParseOrigins splits a comma-separated AML_CORS_ORIGINS value into trimmed
// entries; an empty or blank value gives none.
func ParseOrigins(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func (p *corsPolicy) match(origin string) bool {
	for _, o := range p.literal {
		if o == origin {
			return true
		}
	}
	for _, re := range p.patterns {
		if re.MatchString(origin) {
			return true
		}
	}
	return false
}

// apply adds the CORS headers for r to h.
func (p *corsPolicy) apply(h http.Header, r *http.Request) {
	if p == nil || !p.enabled {
		return
	}
	var allow []string
	if origin := first(r.Header["Origin"]); origin != "" {
		if !p.match(origin) {
			return
		}
		allow = []string{origin}
	} else if p.wildcard {
		allow = []string{"*"}
	} else {
		allow = p.listed
	}
	if len(allow) == 0 {
		return
	}
	h[hdrKeyACAO] = allow
	if r.Method == http.MethodOptions {
		switch strings.ToUpper(first(r.Header["Access-Control-Request-Method"])) {
		case http.MethodGet, http.MethodPost:
			if req := requestedHeaders(first(r.Header["Access-Control-Request-Headers"])); req != "" {
				h["Access-Control-Allow-Headers"] = []string{req}
			}
			h["Access-Control-Allow-Methods"] = []string{"GET, POST"}
		}
	}
	if p.vary && !(len(allow) == 1 && allow[0] == "*") {
		h["Vary"] = append(h["Vary"], "Origin")
	}
}

// remove takes the headers apply may have added off h.
func (p *corsPolicy) remove(h http.Header) {
	if p == nil || !p.enabled {
		return
	}
	for _, k := range []string{hdrKeyACAO, "Access-Control-Allow-Headers", "Access-Control-Allow-Methods"} {
		delete(h, k)
	}
	if v := h["Vary"]; len(v) > 0 && v[len(v)-1] == "Origin" {
		if len(v) == 1 {
			delete(h, "Vary")
		} else {
			h["Vary"] = v[:len(v)-1]
		}
	}
}

// requestedHeaders is the sorted, comma-joined list of the headers a
// preflight asks for (flask-cors allows every header by default).
func requestedHeaders(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	parts := strings.Split(s, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
