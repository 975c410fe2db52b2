package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/frontend/internal/wire"
)

// HTTPS. A cluster with enable_ssl serves scoring on a second listener with
// ServeTLS: HTTP/1.1 over crypto/tls, TLS 1.2 and 1.3, on the lean engine
// of tlsengine.go: one goroutine per connection, the event loop's lean
// scanner and the engine-neutral exchange for the common request, and a
// net/http server for the rest of a connection once a request the scanner
// does not take arrives. Why this engine: a profile of ServeTLS on
// net/http's server showed crypto at about 2 % and net/http's own
// machinery (its reading and parsing, its background read, a goroutine
// woken per request, its allocation) behind 1.8–2× nginx's CPU per
// kept-alive request and 0.6–0.8× its rate; fasthttp's server did worse on
// throughput; the event loop cannot carry TLS records without a fork of
// crypto/tls or kernel TLS (this kernel has no tls ULP). The lean engine
// costs about what nginx does per kept-alive request (bench/frontend -tls,
// bench/README). The certificate can change at any time with
// SetCertificate: new handshakes present the new one and connections
// already open keep theirs, so rotation fails no request.
//
// While SetHTTPSRedirect holds a base URL, the plain engine answers every
// request but /metrics with 308 Permanent Redirect to the same path under
// it, and closes the connection: no scoring request travels in clear text
// or reaches a replica over it. /metrics stays on plain HTTP, guarded as
// before.

// tlsState is the router's HTTPS setting.
type tlsState struct {
	cert     atomic.Pointer[tls.Certificate]
	redirect atomic.Pointer[string]
}

// errNoCertificate fails handshakes before SetCertificate is called.
var errNoCertificate = errors.New("frontend: no TLS certificate set")

// SetCertificate sets the certificate ServeTLS presents; nil makes new
// handshakes fail. Connections already open keep the certificate they
// were made with, so replacing it fails no request in flight or kept
// alive.
func (rt *Router) SetCertificate(cert *tls.Certificate) {
	rt.tls.cert.Store(cert)
}

// Certificate returns the certificate ServeTLS presents now, or nil.
func (rt *Router) Certificate() *tls.Certificate { return rt.tls.cert.Load() }

// SetHTTPSRedirect makes the plain-HTTP engines answer every request except
// PathMetrics with 308 Permanent Redirect to base (such as
// https://scoring.example.com) followed by the request's path and query,
// and close the connection. "" serves plain HTTP again.
func (rt *Router) SetHTTPSRedirect(base string) {
	if base == "" {
		rt.tls.redirect.Store(nil)
		return
	}
	rt.tls.redirect.Store(&base)
}

// tlsConfig is the configuration of ServeTLS: TLS 1.2 or later (Azure's
// front end took 1.2 only; 1.3 costs clients nothing), HTTP/1.1, the
// certificate of the moment.
func (rt *Router) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := rt.tls.cert.Load(); c != nil {
				return c, nil
			}
			return nil, errNoCertificate
		},
	}
}

// ServeTLS accepts connections on ln and serves the router over HTTPS with
// the certificate SetCertificate gives, until ln fails or Shutdown is
// called. It returns nil after Shutdown. The defences are those of Serve:
// the header, body and idle timeouts (the header timeout bounds the
// handshake too), MaxConns, the header and body limits.
func (rt *Router) ServeTLS(ln net.Listener) error {
	return rt.serveTLSLean(ln)
}

// httpServer is a net/http server of h with the router's timeouts and
// header limit.
func (rt *Router) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: rt.headerTimeout,
		IdleTimeout:       rt.idleTimeout,
		MaxHeaderBytes:    wire.MaxHeaderBytes,
		// Failed handshakes and the like, at debug level of the
		// router's quiet logger.
		ErrorLog: slog.NewLogLogger(rt.log.Handler(), slog.LevelDebug),
	}
}

// withBodyDeadline gives each request's body BodyReadTimeout to arrive, as
// the event loop does (net/http's own ReadTimeout would count the header
// time and the scoring time too), and each write of the answer as long to
// reach the caller, as the lean HTTPS engine's writes (net/http's
// WriteTimeout would bound the whole answer, however long it streams): a
// caller that reads nothing for that long is cut off.
func (rt *Router) withBodyDeadline(h http.Handler) http.Handler {
	d := rt.bodyTimeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetReadDeadline(now.Add(d))
		_ = rc.SetWriteDeadline(now.Add(d))
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, d: d}, r)
	})
}

// deadlineWriter moves its connection's write deadline to d from now at
// each write and flush.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

// FlushError flushes, as http.ResponseController.Flush does.
func (w *deadlineWriter) FlushError() error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.rc.Flush()
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// redirectHTTPS answers a plain-HTTP request with 308 to the HTTPS base
// when SetHTTPSRedirect holds one, and reports whether it did.
func (rt *Router) redirectHTTPS(w http.ResponseWriter, r *http.Request) bool {
	base := rt.tls.redirect.Load()
	if base == nil || r.TLS != nil || r.URL.Path == PathMetrics {
		return false
	}
	var idBuf [36]byte
	h := w.Header()
	h.Set("Location", *base+r.URL.RequestURI())
	h.Set("Connection", "close")
	h.Set(HeaderRequestID, string(wire.NewRequestID(idBuf[:0])))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	msg := "This cluster serves scoring over HTTPS only: use " + *base + r.URL.RequestURI()
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(http.StatusPermanentRedirect)
	_, _ = w.Write([]byte(msg))
	return true
}

// engine is a server the router runs: the event loops of Serve, the lean
// HTTPS engine of ServeTLS.
type engine interface {
	shutdown(ctx context.Context) error
}

// addEngine registers e for Shutdown; false if the router is shut down.
func (rt *Router) addEngine(e engine) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return false
	}
	rt.engines = append(rt.engines, e)
	return true
}

// limitListener closes connections accepted beyond max open at once, as the
// event loop does with MaxConns (netutil.LimitListener would instead stop
// accepting, leaving callers waiting in the kernel's queue).
type limitListener struct {
	net.Listener
	max  int64
	open atomic.Int64
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, max: int64(max)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

// countedConn gives its place back on the first Close.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
