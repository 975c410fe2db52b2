// Package loop is the router's event-loop engine, what frontend.Router.Serve
// runs: the engine at the edge that reads and writes sockets, while the
// router's core (package frontend) routes, authenticates, holds replica
// slots and decides each exchange's fate. It reaches the core only through
// the interfaces of core.go — Core for the router, Exchange for one
// request's exchange, one call per phase of a request — which package
// frontend implements in serve.go; it parses and writes HTTP/1.1 with
// package wire and buffers large bodies with package spill.
//
// Connections from callers and kept-alive connections to replicas live in a
// few event loops (one per GOMAXPROCS), each a goroutine serving one epoll
// set of its sockets (poll.go: direct system calls, and a park in the
// runtime's poller when there is nothing to do). A request whose replica slot is free at once
// and which has an idle connection to that replica in the caller's loop is
// forwarded and answered without leaving the loop: read, parse, route,
// write upstream; then read the answer, write it back. No goroutine parks or
// wakes for it, which is what a goroutine per connection (net/http) costs on
// every request.
//
// A request that must wait for a slot waits in a goroutine (the version's
// queue) and is then sent from the loop like the others, on the loop's own
// connections to the replica: a loop keeps one pool of connections per
// replica, whatever path a request took, and a retry after a replica closed
// a kept-alive connection or could not be dialled goes the same way. Only
// /metrics and a request waiting for a version to become routable take the
// slow path, the code the http.Handler path runs, in a goroutine of its
// own. A new connection to a replica is dialled in a goroutine and then
// handed to the loop. One request per caller connection is in progress at a time
// (HTTP/1.1 pipelining is answered in order).
//
// Files: poll.go (the epoll sets and their sockets), loop.go (the engine, callers' connections, requests, the
// exchange's driving, connections to replicas, timeouts and
// backpressure), stream.go (answers forwarded as they arrive, and the
// files of answers a caller lags behind), spill.go (large request bodies
// to files as they arrive).
package loop
