package frontend

import (
	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/wire"
)

// Requests the lean scanner took (package wire), as the event loop and the
// HTTPS engine route and forward them.

// leanPlan decides where the lean request lr goes, for both engines that
// scan requests (the event loop and the HTTPS engine): routed with its plan
// and path kind; refused, with resp (clean on entry) holding the router's
// answer; or general, for the general path (/metrics, a route with
// mirroring, which copies the parsed request, and a wait for a ready
// version), with resp to be reset.
func (rt *Router) leanPlan(lr *wire.Request, resp *fasthttp.Response) (p plan, kind pathKind, routed, general bool) {
	if string(lr.Path) == PathMetrics {
		return p, kind, false, true
	}
	r, versionB, kind, ok := rt.resolve(lr.Path, lr.Method, resp)
	if !ok {
		return p, kind, false, false
	}
	if len(r.mirrors) > 0 {
		return p, kind, false, true
	}
	p, ok = rt.choose(r, versionB, kind, lr.Auth, lr.Version, lr.Alias, lr.CallerKey, resp)
	return p, kind, ok, !ok && p.noReady
}

// upstreamPath is the replica's path for a request of kind.
func upstreamPath(kind pathKind) string {
	if kind == kindScore {
		return "/score"
	}
	return "/swagger.json"
}
