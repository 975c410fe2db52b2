package frontend

import "github.com/aksml/aksml/internal/rawsys"

// sockConn is a TCP connection whose reads and writes are system calls made
// directly on its non-blocking socket, waiting for readiness through the
// runtime's network poller (package rawsys, shared with the replica
// server). The calls never block, so the runtime's bookkeeping around a
// system call that might (handing the thread's processor to another
// thread, waking its monitor thread after an idle spell, which then polls
// every 20 µs for a while) has nothing to do; skipping it saves about a
// tenth of the router's CPU per request on a machine where the router is
// often idle between requests. Deadlines and Close work as on a
// *net.TCPConn.
type sockConn = rawsys.Conn

var newSockConn = rawsys.NewConn

// sockListener hands out TCP connections as sockConns.
type sockListener = rawsys.Listener
