//go:build !linux

package frontend

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// Serve accepts connections on ln and serves the router on them until ln
// fails or Shutdown is called. It returns nil after Shutdown. The event
// loops are Linux's (they are epoll sets); elsewhere Serve runs the router's
// http.Handler under net/http, with the same timeouts, connection cap and
// answers, for developers who run the simulator on macOS or Windows.
func (rt *Router) Serve(ln net.Listener) error {
	srv := rt.httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rt.redirectHTTPS(w, r) {
			rt.ServeHTTP(w, r)
		}
	}))
	if rt.maxConns > 0 {
		ln = newLimitListener(ln, rt.maxConns)
	}
	if !rt.addEngine(httpEngine{srv}) {
		_ = ln.Close()
		return nil
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// httpEngine is Serve's net/http server, for Shutdown.
type httpEngine struct{ srv *http.Server }

func (e httpEngine) shutdown(ctx context.Context) error { return e.srv.Shutdown(ctx) }
