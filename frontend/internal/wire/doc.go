// Package wire is the HTTP/1.1 wire format as the router's engines read
// and write it: the lean scanners of the common request and answer (a
// head's lines scanned once and copied where they pass, as nginx does,
// instead of parsed into fasthttp's structures and written out again),
// the checks a head must pass before fasthttp's parser reads it (net/http's
// rules), chunked bodies (decoded as they arrive, scanned when buffered
// whole, written chunk by chunk), the writers of the request for a
// replica and of the caller's answer, request ids, the router's own
// answers, and the size thresholds at which every engine stops holding a
// message whole (answer.go).
//
// It knows no routes, replicas or connections: the event loop, the HTTPS
// engine and the router's core in package frontend use it. Its slices
// point into the caller's buffers, and nothing in it allocates on the
// common path.
package wire
