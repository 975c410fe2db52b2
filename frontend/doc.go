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
//	GET      /metrics                                        Prometheus exposition
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
// replica); routed responses carry aksml-served-by with the version's name.
// The router's own answers are text/plain:
//
//	401 Unauthorized: REASON
//	404 Service NAME not found | Version V not found in service NAME | Not found
//	405 Method M is not allowed; use GET or POST (with Allow: GET, POST)
//	413 Request body is larger than the limit of N bytes (default 100 MB)
//	502 Replica closed connection before replying (crash, reset)
//	502 the replica's own body, when the replica answered 500 (rewritten, as on azureml-fe)
//	503 Too many requests for service NAME (overloaded)   (queue wait ran out)
//	503 No ready replicas for service NAME   (after waiting up to the queue wait for one)
//	504 Scoring request for service NAME timed out after N ms
//
// # Capacity
//
// Each replica takes at most MaxConcurrentPerReplica requests at once; the
// router sends a request to the least-busy ready replica, or queues it (FIFO)
// up to MaxQueueWait, then answers 503. ScoringTimeout bounds the replica's
// reply (504). A replica that refuses connections is skipped for a second
// and the request tries another one, then the default version, so a crashed
// replica costs callers no error before the backend notices; a replica that
// drops a connection mid-request gives 502 (the request is sent again only
// when the dropped connection was an idle kept-alive one, as net/http does).
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
// or fail the caller and are dropped when the mirror has no free slot.
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
//
// # Engines
//
// Router is an http.Handler, to compose with other handlers. Serve has two
// engines of its own, chosen with Options.Engine; all three give callers
// the same answers (every HTTP test runs on each).
//
// EngineEventLoop, the default, serves connections from gnet event loops,
// one per GOMAXPROCS, each a goroutine waiting in epoll for its callers'
// connections and its own kept-alive connections to replicas. A request
// whose replica has a free slot is forwarded and answered inside the loop,
// with no goroutine parked or woken. The common request (GET or POST,
// HTTP/1.1, Content-Length, a plain path, a route without mirroring) and
// the common answer (Content-Length) are forwarded by scanning their header
// lines once and copying those that pass, as nginx does; anything else is
// read with fasthttp's parser. Requests that must wait for a replica slot,
// /metrics, and retries after a failed dial or a replica that closed a
// kept-alive connection run the engine-neutral path in a goroutine; new
// connections to replicas are dialled in a goroutine and handed to the
// loop. A caller's pipelined requests are answered in order. In
// bench/frontend this engine reaches 1.00–1.06× nginx's maximum throughput
// at about its CPU per request, where the fasthttp engine reaches
// 0.94–1.01× (see bench/README.md).
//
// EngineFastHTTP serves each connection from a goroutine of fasthttp's
// server, forwarding over the router's own pool of kept-alive connections
// per replica (idle ones close after a second); a small request is written
// from inside the wait for its answer, which spares a system call, and
// sockets are read and written with system calls made directly on the
// non-blocking socket, without the runtime's bookkeeping for calls that
// might block (see sockConn). The net/http path (ServeHTTP) uses the same
// pool. Backends should listen with Serve.
//
// Queue waits and scoring timeouts run on real time; Options.Clock only
// drives token issue and expiry.
package frontend
