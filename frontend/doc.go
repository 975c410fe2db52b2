// Package frontend is aksml's data-plane router, the counterpart of
// azureml-fe: every backend (the in-process simulator, the Kubernetes
// backend) puts it in front of its replicas. It knows nothing of workspaces
// or clusters; a backend describes what to serve with SetRoute and reads the
// load back with Load and Stats.
//
// # URIs
//
//	POST|GET /api/v1/service/NAME/score                      score (split over versions)
//	GET      /api/v1/service/NAME/swagger.json               the default version's swagger
//	POST|GET /api/v1/service/NAME/versions/VERSION/score     score on one version
//	GET      /api/v1/service/NAME/versions/VERSION/swagger.json
//	GET      /metrics                                        Prometheus exposition (see Load and metrics)
//
// A web service is a Route with one version; an endpoint (AksEndpoint) is a
// Route with several. The router forwards to REPLICA/score and
// REPLICA/swagger.json, keeping the query string, and strips the
// Authorization header (replicas never see keys or tokens). swagger.json is
// served without authentication.
//
// # Authentication
//
// AuthKey takes "Authorization: Bearer KEY" with the primary or secondary
// key, compared in constant time; GenerateKey makes keys with crypto/rand.
// AuthToken takes a JWT from the router's TokenIssuer (HMAC-SHA256, audience
// = route name, with an expiry); Router.Token returns one with its
// refresh-after and expiry times, like get_access_token. A missing, wrong,
// expired, tampered or other-service credential gets 401 with a plain-text
// body "Unauthorized: REASON" (REASON is e.g. "invalid key", "token
// expired") and "WWW-Authenticate: Bearer error="invalid_token"".
//
// # Status codes
//
// Every response carries x-ms-request-id (a fresh UUID, also sent to the
// replica, replacing any the caller sent, and replacing any the replica
// answered with); routed responses carry aksml-served-by with the
// version's name. The router's own answers are text/plain:
//
//	400 Bad request   (malformed request line, header, Host, Content-Length; Serve closes the connection)
//	401 Unauthorized: REASON
//	404 Service NAME not found | Version V not found in service NAME | Not found
//	405 Method M is not allowed; use GET or POST (with Allow: GET, POST)
//	413 Request body is larger than the limit of N bytes (default 100 MB; a chunked body as soon as its chunks pass it)
//	417 (no body: an Expect other than 100-continue, as net/http; the connection closes)
//	431 Request header fields too large (Serve: a header block over 16 KiB)
//	500 Could not buffer the request body (its file could not be written)
//	501 Unsupported transfer encoding (anything but chunked)
//	505 HTTP version not supported (anything but HTTP/1.x)
//	502 Replica closed connection before replying (crash, reset)
//	502 the replica's own body, when the replica answered 500 (rewritten, as on azureml-fe)
//	503 Too many requests for service NAME (overloaded)   (queue wait ran out)
//	503 No ready replicas for service NAME   (after waiting up to the queue wait for one)
//	503 Too many large request bodies are being received; try again   (MaxSpillBytes on disk; Retry-After: 1)
//	504 Scoring request for service NAME timed out after N ms
//
// # Capacity
//
// Each replica takes at most MaxConcurrentPerReplica requests at once; the
// router sends a request to the least-busy ready replica, or queues it (FIFO)
// up to MaxQueueWait, then answers 503. ScoringTimeout bounds the replica's
// reply (504). A replica that refuses connections is skipped for a second
// and the request tries another one, then the default version, so a crashed
// replica costs callers no error before the backend notices. A request is
// sent again only when it provably never reached a replica: a failed dial,
// a kept-alive connection found closed before the request was written, a
// write that failed before any byte left (at most maxRetries times). A
// replica that drops a connection after the request may have reached it
// gives 502, whatever the method, so a request that crashes replicas runs
// once. A caller that hangs up while its request is at a replica frees the
// slot at once, and the router closes its connection to the replica, which
// ends a Go handler's context (and tells any server that watches its
// connections).
//
// # Traffic
//
// Without targeting, live traffic follows the versions' TrafficPercent, with
// the remainder to the default version, as an exact smooth weighted round
// robin (see schedule for the bounds). HeaderVersion (or its alias
// azureml-model-deployment) or the per-version URI pick a version outright.
// HeaderCallerKey makes the split sticky by weighted rendezvous hashing. A
// version with no ready replica gets no live traffic: its share goes to the
// default version (or, if the default has none, to the others in proportion)
// and RouteStats.Fallback says so. MirrorPercent copies that share of the
// route's live requests to a version in the background; copies never delay
// or fail the caller and are dropped when the mirror has no free slot (and,
// on Serve, for a body too large to be held in memory).
//
// # Load and metrics
//
// Load gives each version's in-flight requests (queued ones included) and
// replica counts: the autoscaler's input (package autoscale). Stats adds
// counters by status code, latency and mirroring. /metrics exposes the same
// per service and version: aksml_frontend_requests_total,
// aksml_frontend_errors_total, aksml_frontend_request_duration_seconds,
// aksml_frontend_in_flight_requests, aksml_frontend_queued_requests,
// aksml_frontend_replicas, aksml_frontend_ready_replicas,
// aksml_frontend_traffic_percent and aksml_frontend_mirrored_requests_total.
// As it names every service, /metrics answers callers on the router's own
// machine (a loopback address: the simulator, kubectl port-forward, a
// sidecar) and callers presenting Options.MetricsKey as a Bearer
// credential; others get 404 (401 when a MetricsKey is set). The
// exposition is Prometheus' text format (version 0.0.4), written by the
// router itself so that programs linking it do not link the Prometheus
// client; WriteMetrics gives it to a backend's own listener.
//
// # Engines
//
// Router is an http.Handler, to compose with other handlers; Serve serves
// connections itself with an event-loop engine. Both give callers the same
// answers (every HTTP test runs on each), but for what net/http decides
// before a handler runs: on the http.Handler path, parsing, timeouts and
// connection limits are the http.Server's.
//
// Serve serves connections from event loops, one per GOMAXPROCS, each a
// goroutine serving one epoll set of its callers' connections and its own
// kept-alive connections to replicas, with direct system calls (so the
// runtime hands no processor off around them) and a park in the runtime's
// poller when it has nothing to do. A request whose replica has a
// free slot is forwarded and answered inside the loop, with no goroutine
// parked or woken. The common request (GET or POST, HTTP/1.1,
// Content-Length, a plain path, a route without mirroring) and the common
// answer (Content-Length) are forwarded by scanning their header lines once
// and copying those that pass, as nginx does; anything else is checked
// against net/http's rules (see the status codes above; a bare LF or a
// folded header line is refused with 400, where net/http accepts them) and
// read with fasthttp's parser. A request that must wait for a replica slot
// waits in a goroutine and is then sent from the loop, on the loop's own
// connections (one pool per replica per loop, for every request and retry);
// /metrics and a request waiting for a version to become routable run the
// engine-neutral path in a goroutine; new connections to replicas are
// dialled in a goroutine and handed to the loop. A caller's pipelined requests are
// answered in order. A request larger than 64 KiB that arrives in pieces is
// moved into the connection's own buffer as it arrives (each byte copied
// once). A body larger than 1 MiB (or a chunked one past 64 KiB) is not
// held in memory: it is written to an unlinked file in
// Options.BodySpillDir as it arrives (a chunked one decoded, its size
// checked at each chunk header, so an oversized one gets 413 before the
// chunk that passes the limit arrives), then sent to the replica from the
// file with a Content-Length, as nginx buffers large bodies. A connection
// holds a few MB at most whatever the body's size (100 MB: about 0.5 s of
// CPU and under 20 MB of RSS for the router), and such a request is not
// mirrored. The bodies on disk at once are bounded by MaxSpillBytes (2 GiB):
// a body that would pass it gets 503 as it arrives. ServeHTTP buffers
// bodies the same way (a body over 1 MiB, or a chunked one past 64 KiB, to
// a file as net/http reads it), under the same limits.
//
// Answers are forwarded as they arrive, on every engine: a chunked answer
// (a score.py streaming with AMLResponse, a Go handler that flushes) goes
// to an HTTP/1.1 caller chunk by chunk (on the http.Handler path, each
// piece written and flushed as it is read), and an answer with more than
// 256 KiB still to come goes on piece by piece, so the caller sees the
// first bytes while the replica produces the rest, with CPU linear in the
// answer's size and memory bounded per request whatever its size (100 MB:
// about 0.1–0.4 s of CPU and under 20 MB of RSS for the router). A replica
// that breaks off after the head went out, or stops sending for
// BodyReadTimeout, ends the caller's answer before its end (a truncated
// answer, never a complete-looking one; counted as 502): the event loop
// and the HTTPS engine close the connection, ServeHTTP panics with
// http.ErrAbortHandler so that net/http closes it. A caller that does not
// read: the event loop holds at most about 1 MiB of an answer per
// connection, writes the rest to a file (under BodySpillDir and
// MaxSpillBytes) and sends it as the caller reads, so the replica's slot is
// freed as soon as the replica is done; ServeHTTP and the HTTPS engine write
// each piece before reading the next, so the replica waits for the caller
// (its slot held, as nginx with proxy_buffering off). A caller that reads
// nothing for BodyReadTimeout is cut off (on the http.Handler path, by the
// http.Server's WriteTimeout). The event loop's slow path (a request that
// waited for a slot, a retry), answers that run until the replica closes,
// and, on the event loop, chunked answers to HTTP/1.0 callers are read
// whole before they are sent.
//
// Serve's defences, set in Options (defaults close to nginx's): a header
// block must arrive within HeaderReadTimeout (10 s) of its first byte, a
// kept-alive connection may stay silent for IdleTimeout (75 s), a body must
// make progress within BodyReadTimeout (60 s); at most MaxConns (10,000)
// connections are served at once; and a caller that leaves more than
// MaxPipelineBytes (1 MiB) of answers unread is not served further until it
// reads them, and is disconnected if it pipelines that much more.
//
// # HTTPS
//
// ServeTLS serves the router over HTTPS (enable_ssl) on a listener of its
// own, beside Serve's plain one, as azureml-fe's port 443 beside port 80:
// HTTP/1.1 over crypto/tls, TLS 1.2 and 1.3 (Azure's front end took 1.2
// only; 1.3 costs clients nothing), with Serve's defences (the header
// timeout bounds the handshake too; the idle and body timeouts; MaxConns;
// the header and body limits, and spill files under the same allowance).
//
// Its engine is a lean one: crypto/tls does the handshake and the
// records, and each connection has one goroutine, which scans the common
// request with the event loop's lean scanner, forwards it through the same
// exchange on a kept-alive connection from the replica's pool, and writes
// the answer with one write (a chunked or large one as it arrives, see
// above); no goroutine is started per request. Every write to the caller
// must complete within BodyReadTimeout, or the connection closes. Anything
// the scanner does not take (a chunked or large body, Expect, HTTP/1.0,
// /metrics, a route with mirroring or with no ready version, a malformed
// request) hands the connection, with the bytes already read, to a net/http
// server for the rest of its life, which answers as ServeHTTP does; so
// callers get the event loop's answers on the lean path and net/http's on
// the others (the engine tests and the fuzz comparison with net/http run on
// it). While a request is at a replica the engine looks at its caller's
// socket every 100 ms, and a caller that hung up frees the slot. This
// engine, not net/http's server (which spent 1.8–2× nginx's CPU per
// kept-alive request, in its own machinery rather than in crypto) nor
// fasthttp's (slower still), nor the event loop carrying TLS records (a
// fork of crypto/tls, or kernel TLS, which this kernel lacks), is what
// bench/frontend -tls measures against nginx with the same certificate:
// about nginx's CPU per kept-alive request and rate.
//
// SetCertificate swaps the certificate atomically: new handshakes present
// the new one and connections already open keep theirs, so rotation fails
// no request. While SetHTTPSRedirect holds a base URL, plain HTTP on either
// plain engine is answered 308 Permanent Redirect to the same path under it
// (the connection then closes) and never reaches a replica; /metrics stays
// on plain HTTP, under its own guard.
//
// Queue waits and scoring timeouts run on real time; Options.Clock only
// drives token issue and expiry.
//
// # Layout
//
// The router is its core and its engines at the edge. The core, in this
// package: routes and the choice of a version (router.go, route.go,
// split.go), authentication (auth.go), the exchange state machine that
// takes a slot, classifies each attempt's outcome, retries or falls back
// and settles the counts (exchange.go, the one file with the exchange's
// logic), replica pools, queues and breakers (pool.go), kept-alive
// connections to replicas (upstream.go, over the direct socket I/O of
// rawio.go), the routing of a scanned request (scanned.go), metrics
// (metrics.go).
//
// The engines drive the exchange:
//   - the http.Handler path: ServeHTTP in router.go, relay.go for
//     streamed answers;
//   - the event loop: package frontend/internal/loop, which reaches the
//     core only through its Core and Exchange interfaces, implemented in
//     serve.go (Serve);
//   - the HTTPS engine: tlsengine.go, tls.go (ServeTLS).
//
// What the engines share below the core: the HTTP/1.1 wire format — the
// lean scanners, the checks of a head against net/http's rules, chunked
// bodies, request ids and the router's own answers, the writers of the
// replica's request and the caller's answer — is package
// frontend/internal/wire; spill files and their allowance are package
// frontend/internal/spill; the socket peek that finds a kept-alive
// connection closed is package frontend/internal/sock.
package frontend
