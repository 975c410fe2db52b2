package frontend

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"k8s.io/utils/clock"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend/internal/spill"
	"github.com/aksml/aksml/frontend/internal/wire"
)

// Header names the router reads and writes.
const (
	// HeaderVersion sends a request to the named version of an endpoint,
	// whatever the traffic split. An unknown version gives 404; a version
	// without a ready replica gives 503 (no fallback: the caller asked for it).
	HeaderVersion = "aksml-version"
	// HeaderVersionAlias is accepted like HeaderVersion (the Azure ML v2 name).
	HeaderVersionAlias = "azureml-model-deployment"
	// HeaderCallerKey makes the split sticky: requests with the same caller
	// key go to the same version while the weights stay, and a weight change
	// from p to q % moves only about |q−p| % of callers.
	HeaderCallerKey = "aksml-caller-key"
	// HeaderRequestID is set on every response (and forwarded to the replica)
	// with a fresh UUID.
	HeaderRequestID = "x-ms-request-id"
	// HeaderServedBy is set on routed responses to the name of the version
	// that answered.
	HeaderServedBy = "aksml-served-by"
)

// URI paths the router serves.
const (
	// PathPrefix starts every route URI: PathPrefix + NAME + "/score",
	// PathPrefix + NAME + "/swagger.json", and, per version,
	// PathPrefix + NAME + "/versions/" + VERSION + "/score" (and
	// "/swagger.json").
	PathPrefix = "/api/v1/service/"
	// PathMetrics serves the Prometheus exposition of every route.
	PathMetrics = "/metrics"
)

// DefaultMaxBodyBytes is the largest request body accepted (100 MB, as on
// azureml-fe); larger bodies get 413.
const DefaultMaxBodyBytes = 100 << 20

// Options configures a Router. The zero value (or nil) is usable.
type Options struct {
	// Logger receives the router's few log lines; nil discards them.
	Logger *slog.Logger
	// Clock judges token expiry and stamps token issue times; nil is the
	// real clock. Queue waits and scoring timeouts always run on real time,
	// because they bound real network I/O.
	Clock clock.PassiveClock
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Tokens issues and verifies access tokens for routes with AuthToken;
	// nil means an issuer with a random secret, the router's Clock and
	// default lifetimes.
	Tokens *TokenIssuer
	// MaxMirrorsInFlight bounds mirrored copies being sent at once; copies
	// beyond it are dropped (and counted). 0 means 1024.
	MaxMirrorsInFlight int
	// MetricsKey, when set, lets callers presenting it as
	// "Authorization: Bearer KEY" read PathMetrics from any address.
	// Without it (and without the key) only callers on the router's own
	// machine (a loopback address) may; others get 404, as PathMetrics
	// lists every service.
	MetricsKey string

	// The defences below hold on Serve's connections; on the http.Handler
	// path they are the http.Server's to set (ReadHeaderTimeout,
	// IdleTimeout, ReadTimeout).

	// HeaderReadTimeout bounds the time from a request's first byte (or
	// from the connection's opening) to the end of its header block; a
	// connection past it is closed. 0 means DefaultHeaderReadTimeout.
	HeaderReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends nothing for
	// this long after an answer. 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// BodyReadTimeout closes a connection whose request body makes no
	// progress (no byte arrives) for this long. It also bounds a streamed
	// answer's progress from the replica, on every engine, and to the
	// caller on Serve and ServeTLS (see Engines in the package doc). 0
	// means DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// MaxConns bounds the connections served at once; connections beyond
	// it are closed as they arrive. 0 means DefaultMaxConns.
	MaxConns int
	// MaxPipelineBytes bounds what a connection may leave in the router:
	// while more than this many bytes of answers wait for the caller to
	// read them, its further requests are not served; and a connection
	// that sends more than this many bytes beyond the request being
	// served is closed. 0 means DefaultMaxPipelineBytes.
	MaxPipelineBytes int
	// BodySpillDir is where Serve keeps a request body larger than 1 MiB
	// while it arrives and until it is sent (files removed as soon as
	// they are created, so nothing is left behind); "" means
	// os.TempDir(). Where no file can be created there, such bodies are
	// held in memory.
	BodySpillDir string
	// MaxSpillBytes bounds the bytes of bodies in BodySpillDir at once,
	// over all connections; a body that would pass it is refused with 503
	// (and the connection closed) as its bytes arrive, so callers cannot
	// fill the disk. 0 means DefaultMaxSpillBytes.
	MaxSpillBytes int64
}

// Defaults of the defences in Options, close to nginx's.
const (
	DefaultHeaderReadTimeout = 10 * time.Second
	DefaultIdleTimeout       = 75 * time.Second
	DefaultBodyReadTimeout   = 60 * time.Second
	DefaultMaxConns          = 10000
	DefaultMaxPipelineBytes  = 1 << 20
	// DefaultMaxSpillBytes lets twenty bodies of the default 100 MB limit
	// be buffered on disk at once. nginx sets no such bound (its
	// client_body_temp_path fills until the disk is full).
	DefaultMaxSpillBytes = 2 << 30
)

// Router is the data-plane front-end: it authenticates scoring requests,
// picks a version by targeting, stickiness or exact split, queues for a free
// replica slot, forwards with a timeout, mirrors, and counts. It knows
// nothing of workspaces or backends: the backend installs routes with
// SetRoute whenever replicas or weights change.
//
// Router is an http.Handler. Serve runs the same logic on event loops, the
// faster engine (see bench/frontend), and is what backends use to listen.
type Router struct {
	log     *slog.Logger
	clock   clock.PassiveClock
	maxBody int64
	// loopIdle overrides the event-loop engine's idle timeout for
	// connections to replicas (tests).
	loopIdle time.Duration
	// now is the clock of replicas' breakers (tests set it before the
	// first SetRoute).
	now        func() time.Time
	tokens     *TokenIssuer
	metricsKey []byte
	// isLocal reports whether a caller's address ("IP:port") is on this
	// machine; tests stand in for remote callers with it.
	isLocal func(addr string) bool

	headerTimeout, idleTimeout, bodyTimeout time.Duration
	maxConns, maxPipeline                   int
	spill                                   spill.Allowance // of spill files

	table atomic.Pointer[table]

	mu      sync.Mutex    // serialises writers of table and servers
	changed chan struct{} // closed (and replaced) when the table changes
	engines []engine
	closed  bool

	tls tlsState

	mirrorSem chan struct{}
	mirrorWG  sync.WaitGroup
}

// table is an immutable snapshot of all routes.
type table struct {
	routes map[string]*compiled
}

// compiled is an immutable view of one route, built by SetRoute. Its
// versionStates are shared with earlier and later views of the same route.
type compiled struct {
	name      string
	authMode  AuthMode
	primary   []byte
	secondary []byte
	cfg       []Version // as given, replicas dropped
	versions  []*versionState
	byName    map[string]int
	def       int
	routable  []bool
	weights   []int // effective, units of 0.01 %
	fallback  bool
	sched     []uint8 // nil when nothing is routable
	cursor    *atomic.Uint64
	seeds     []uint64
	mirrors   []int    // versions with MirrorPercent > 0
	mirrorU   []uint64 // their percentages in units
}

// New returns a Router with no routes.
func New(opts *Options) *Router {
	if opts == nil {
		opts = &Options{}
	}
	rt := &Router{log: opts.Logger, clock: opts.Clock, maxBody: opts.MaxBodyBytes, tokens: opts.Tokens,
		metricsKey: []byte(opts.MetricsKey), isLocal: loopbackAddr,
		headerTimeout: orDefault(opts.HeaderReadTimeout, DefaultHeaderReadTimeout),
		idleTimeout:   orDefault(opts.IdleTimeout, DefaultIdleTimeout),
		bodyTimeout:   orDefault(opts.BodyReadTimeout, DefaultBodyReadTimeout),
		maxConns:      orDefault(opts.MaxConns, DefaultMaxConns),
		maxPipeline:   orDefault(opts.MaxPipelineBytes, DefaultMaxPipelineBytes),
		now:           time.Now}
	rt.spill.Dir, rt.spill.Cap = opts.BodySpillDir, orDefault(opts.MaxSpillBytes, DefaultMaxSpillBytes)
	if rt.log == nil {
		rt.log = slog.New(slog.DiscardHandler)
	}
	if rt.clock == nil {
		rt.clock = clock.RealClock{}
	}
	if rt.maxBody <= 0 {
		rt.maxBody = DefaultMaxBodyBytes
	}
	if rt.tokens == nil {
		rt.tokens = NewTokenIssuer(nil, &TokenOptions{Clock: rt.clock})
	}
	n := opts.MaxMirrorsInFlight
	if n <= 0 {
		n = 1024
	}
	rt.mirrorSem = make(chan struct{}, n)
	rt.changed = make(chan struct{})
	rt.table.Store(&table{routes: map[string]*compiled{}})
	return rt
}

// Tokens returns the router's token issuer.
func (rt *Router) Tokens() *TokenIssuer { return rt.tokens }

// WriteMetrics writes the exposition PathMetrics serves, in Prometheus'
// text format (version 0.0.4), to w: for a backend that serves metrics on
// a listener of its own.
func (rt *Router) WriteMetrics(w io.Writer) error {
	_, err := w.Write(rt.appendMetrics(nil))
	return err
}

// SetRoute installs r, or replaces the route of the same name atomically:
// requests already routed finish on the old configuration, the next ones use
// the new one. Versions and replicas that keep their names and IDs keep
// their counters, queues, in-flight accounting and connections. When
// SetRoute returns, the new weights are in force, so a backend may then
// scale down a version that lost traffic, and no new request picks a replica
// that was removed or marked not ready. To retire a replica without errors
// (rolling update), remove it with SetRoute first, then stop its server
// gracefully (http.Server.Shutdown): requests already sent to it finish, and
// one that picked it an instant before the update and finds it closed is
// sent to another replica. An invalid route is refused with
// errcode.InvalidArgument listing every problem.
func (rt *Router) SetRoute(r Route) error {
	if err := r.validate(); err != nil {
		return err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	old := rt.table.Load()
	prev := old.routes[r.Name]
	c := &compiled{
		name:      r.Name,
		authMode:  r.Auth.Mode,
		primary:   []byte(r.Auth.PrimaryKey),
		secondary: []byte(r.Auth.SecondaryKey),
		byName:    make(map[string]int, len(r.Versions)),
	}
	pct := make([]float64, len(r.Versions))
	for i, v := range r.Versions {
		var vs *versionState
		if prev != nil {
			if j, ok := prev.byName[v.Name]; ok {
				vs = prev.versions[j]
			}
		}
		if vs == nil {
			vs = newVersionState(r.Name, v.Name, rt.now)
		}
		c.routable = append(c.routable, vs.pool.update(&r.Versions[i]))
		cfg := v
		cfg.Replicas = nil
		c.cfg = append(c.cfg, cfg)
		c.versions = append(c.versions, vs)
		c.byName[v.Name] = i
		c.seeds = append(c.seeds, hashString(v.Name))
		pct[i] = v.TrafficPercent
		if v.IsDefault {
			c.def = i
		}
		if v.MirrorPercent > 0 {
			c.mirrors = append(c.mirrors, i)
			c.mirrorU = append(c.mirrorU, uint64(math.Round(v.MirrorPercent*weightUnits/100)))
		}
	}
	c.weights = effectiveWeights(pct, c.def, c.routable)
	for i := range c.routable {
		if !c.routable[i] && c.weights[i] == 0 && (pct[i] > 0 || i == c.def) {
			c.fallback = true
		}
	}
	// Keep the split's position when the effective weights did not change,
	// so replica churn does not restart the sequence.
	if prev != nil && equalInts(prev.weights, c.weights) && equalNames(prev.cfg, c.cfg) {
		c.sched, c.cursor = prev.sched, prev.cursor
	} else {
		c.sched = schedule(c.weights)
		c.cursor = new(atomic.Uint64)
	}
	if prev != nil {
		for name, j := range prev.byName {
			if _, ok := c.byName[name]; !ok {
				prev.versions[j].pool.close()
			}
		}
	}
	nt := &table{routes: make(map[string]*compiled, len(old.routes)+1)}
	for k, v := range old.routes {
		nt.routes[k] = v
	}
	nt.routes[r.Name] = c
	rt.table.Store(nt)
	rt.tableChanged()
	return nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalNames(a, b []Version) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

// RemoveRoute removes the route named name; requests in flight finish. It
// returns errcode.NotFound if there is no such route.
func (rt *Router) RemoveRoute(name string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	old := rt.table.Load()
	prev, ok := old.routes[name]
	if !ok {
		return errcode.Errorf(errcode.NotFound, "route %s not found", name)
	}
	nt := &table{routes: make(map[string]*compiled, len(old.routes))}
	for k, v := range old.routes {
		if k != name {
			nt.routes[k] = v
		}
	}
	rt.table.Store(nt)
	rt.tableChanged()
	for _, v := range prev.versions {
		v.pool.close()
	}
	return nil
}

// tableChanged wakes requests waiting for a route to become routable; rt.mu
// is held.
func (rt *Router) tableChanged() {
	close(rt.changed)
	rt.changed = make(chan struct{})
}

// awaitRoutable waits, up to the default version's queue wait, until route
// name has a version that takes live traffic. false means it has none (or
// no longer exists) at the deadline or when ctx ends.
func (rt *Router) awaitRoutable(ctx context.Context, name string) bool {
	var timer *time.Timer
	for {
		rt.mu.Lock()
		ch := rt.changed
		rt.mu.Unlock()
		r := rt.table.Load().routes[name]
		switch {
		case r == nil:
			return false
		case r.sched != nil:
			return true
		case timer == nil:
			timer = time.NewTimer(time.Duration(r.versions[r.def].pool.queueMax.Load()))
			defer timer.Stop()
		}
		var done <-chan struct{}
		if ctx != nil {
			done = ctx.Done()
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-done:
			return false
		}
	}
}

// Routes returns the names of the installed routes, in no order.
func (rt *Router) Routes() []string {
	t := rt.table.Load()
	out := make([]string, 0, len(t.routes))
	for k := range t.routes {
		out = append(out, k)
	}
	return out
}

func (rt *Router) lookup(name string) (*compiled, error) {
	r := rt.table.Load().routes[name]
	if r == nil {
		return nil, errcode.Errorf(errcode.NotFound, "route %s not found", name)
	}
	return r, nil
}

// Stats returns a snapshot of the route's versions and counters, or
// errcode.NotFound.
func (rt *Router) Stats(name string) (RouteStats, error) {
	r, err := rt.lookup(name)
	if err != nil {
		return RouteStats{}, err
	}
	return r.stats(), nil
}

// Load returns each version's load signal (in-flight requests, queued ones
// included, and replica counts), or errcode.NotFound. It is cheap enough to
// sample many times a second.
func (rt *Router) Load(name string) ([]VersionLoad, error) {
	r, err := rt.lookup(name)
	if err != nil {
		return nil, err
	}
	out := make([]VersionLoad, len(r.versions))
	for i, v := range r.versions {
		reps, ready, _ := v.pool.counts()
		out[i] = VersionLoad{Version: v.name, InFlight: int(v.inflight.Load()), Queued: int(v.pool.queued.Load()), Replicas: reps, ReadyReplicas: ready}
	}
	return out, nil
}

// Token issues an access token for the route named name. It returns
// errcode.NotFound for an unknown route and errcode.FailedPrecondition when
// the route does not use token auth.
func (rt *Router) Token(name string) (Token, error) {
	r, err := rt.lookup(name)
	if err != nil {
		return Token{}, err
	}
	if r.authMode != AuthToken {
		return Token{}, errcode.Errorf(errcode.FailedPrecondition, "route %s uses %s auth, not token auth", name, r.authMode)
	}
	return rt.tokens.Issue(name)
}

// Shutdown stops the servers started with Serve (waiting for their requests
// until ctx ends), waits for mirrored copies in flight, and closes idle
// connections to replicas. The router still works as an http.Handler after.
func (rt *Router) Shutdown(ctx context.Context) error {
	rt.mu.Lock()
	rt.closed = true
	engines := rt.engines
	rt.engines = nil
	rt.mu.Unlock()
	var errs []error
	for _, e := range engines {
		if err := e.shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() { rt.mirrorWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	for _, r := range rt.table.Load().routes {
		for _, v := range r.versions {
			v.pool.closeIdle()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return errcode.Wrap(errcode.DeadlineExceeded, err)
	}
	return nil
}

func (rt *Router) tooLarge(resp *fasthttp.Response) {
	wire.SetError(resp, http.StatusRequestEntityTooLarge, "Request body is larger than the limit of "+strconv.FormatInt(rt.maxBody, 10)+" bytes")
	wire.SetRequestID(resp)
}

var bodyPool sync.Pool

// bodyBuffer returns an empty buffer for a request body, from the pool.
func bodyBuffer() *bytes.Buffer {
	if x := bodyPool.Get(); x != nil {
		buf := x.(*bytes.Buffer)
		buf.Reset()
		return buf
	}
	return new(bytes.Buffer)
}

// putBodyBuffer returns buf to the pool unless it grew past 1 MiB.
func putBodyBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= 1<<20 {
		bodyPool.Put(buf)
	}
}

// ServeHTTP serves one request on net/http. It reads the body (up to the
// limit), runs the same logic as the event loop and copies the response.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rt.redirectHTTPS(w, r) {
		return
	}
	if r.URL.Path == PathMetrics {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if rt.metricsRefused(r.RemoteAddr, []byte(r.Header.Get("Authorization")), resp) {
			writeHTTP(w, resp)
			return
		}
		w.Header().Set("Content-Type", metricsContentType)
		_, _ = w.Write(rt.appendMetrics(nil))
		return
	}
	if r.Host == "" && r.ProtoAtLeast(1, 1) {
		// As the event loop does: fasthttp, which reads its requests,
		// needs a Host.
		w.Header().Set("Connection", "close")
		http.Error(w, "Bad request", http.StatusBadRequest)
		return
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	buf := bodyBuffer()
	defer putBodyBuffer(buf)
	if r.ContentLength > rt.maxBody {
		rt.tooLarge(resp)
		writeHTTP(w, resp)
		return
	}
	var sp *spill.File
	if r.Body != nil {
		var err error
		sp, err = rt.readBody(r.Body, r.ContentLength, buf)
		defer sp.Close()
		if err != nil {
			// Free the body's share of the spill allowance before the
			// answer goes out, so a caller who retries finds it free.
			sp.Close()
			if !rt.refuseBody(resp, err) {
				wire.SetError(resp, http.StatusBadRequest, "Could not read the request body: "+err.Error())
				wire.SetRequestID(resp)
			}
			// The rest of the body is not read: close the connection
			// rather than let the server wait for the rest of it.
			w.Header().Set("Connection", "close")
			writeHTTP(w, resp)
			return
		}
	}
	req.Header.SetMethod(r.Method)
	req.SetRequestURI(r.URL.RequestURI())
	req.Header.SetHost(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if sp != nil {
		req.SetBodyStream(sp.Reader(), int(sp.Size))
	} else {
		req.SetBodyRaw(buf.Bytes())
	}
	var rel bodyRelay
	rt.handle(r.Context(), req, resp, time.Now(), false, &rel)
	sp.Close() // the allowance comes back before the caller reads the answer
	if rel.streaming() {
		rt.relayHTTP(r.Context(), w, resp, &rel)
		return
	}
	writeHTTP(w, resp)
}

// writeHTTP copies a fasthttp response to w.
// refuseBody sets resp to the answer both engines give a body they could
// not take: 413 past the limit, 503 when the spill allowance is used up,
// 500 when its file could not be written. It returns false for any other
// error, which each engine answers its own way.
func (rt *Router) refuseBody(resp *fasthttp.Response, err error) bool {
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		rt.tooLarge(resp)
		return true
	case err == spill.ErrFull:
		wire.SetError(resp, http.StatusServiceUnavailable, msgSpillFull)
		resp.Header.Set("Retry-After", "1")
	case errors.As(err, new(*spill.Error)):
		rt.log.Error("frontend: request body not buffered", "err", err)
		wire.SetError(resp, http.StatusInternalServerError, "Could not buffer the request body")
	default:
		return false
	}
	wire.SetRequestID(resp)
	return true
}

// readBody reads a request's body (of length cl, -1 when chunked) for
// ServeHTTP and ServeTLS, as the event loop does: up to
// wire.SpillOver bytes into buf (a chunked body up to wire.AccumulateOver), and a
// larger body into a spill file (the
// returned file, nil when the body is in buf) as it arrives, with the limit
// and the spill allowance checked on the way; where no file can be made,
// into buf. The error is fasthttp.ErrBodyTooLarge, spill.ErrFull or the
// body's read error.
func (rt *Router) readBody(body io.Reader, cl int64, buf *bytes.Buffer) (*spill.File, error) {
	inMemory := min(wire.SpillOver, rt.maxBody)
	if cl < 0 {
		inMemory = min(wire.AccumulateOver, rt.maxBody) // chunked, as on the event loop
	}
	var n int64
	if cl < 0 || cl <= inMemory {
		if cl > 0 {
			buf.Grow(int(cl))
		}
		var err error
		n, err = buf.ReadFrom(io.LimitReader(body, inMemory+1))
		if err != nil {
			return nil, err
		}
		if n <= inMemory {
			return nil, nil
		}
		if n > rt.maxBody {
			return nil, fasthttp.ErrBodyTooLarge
		}
	}
	// A larger body (known by its length, or found so while reading):
	// to a file, as it arrives.
	sp, err := spill.Create(&rt.spill, nil, cl)
	if err == spill.ErrFull {
		return nil, err
	}
	if err != nil {
		if rt.spill.FirstWarning() {
			rt.log.Warn("frontend: large request bodies are held in memory: no file for them", "err", err)
		}
		m, err := buf.ReadFrom(io.LimitReader(body, rt.maxBody+1-n))
		if err == nil && n+m > rt.maxBody {
			err = fasthttp.ErrBodyTooLarge
		}
		return nil, err
	}
	if err := sp.Write(buf.Bytes()); err != nil {
		sp.Close()
		return nil, err
	}
	piece := make([]byte, 64<<10)
	for {
		k, rerr := body.Read(piece)
		if sp.Size+int64(k) > rt.maxBody {
			sp.Close()
			return nil, fasthttp.ErrBodyTooLarge
		}
		if err := sp.Write(piece[:k]); err != nil {
			sp.Close()
			return nil, err
		}
		if rerr == io.EOF {
			return sp, nil
		}
		if rerr != nil {
			sp.Close()
			return nil, rerr
		}
	}
}

func writeHTTP(w http.ResponseWriter, resp *fasthttp.Response) {
	copyHead(w, resp)
	body := resp.Body()
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode())
	w.Write(body)
}

// copyHead copies resp's header fields to w's, but for those net/http
// writes itself.
func copyHead(w http.ResponseWriter, resp *fasthttp.Response) {
	h := w.Header()
	for k, v := range resp.Header.All() {
		switch {
		case bytes.EqualFold(k, []byte("Connection")), bytes.EqualFold(k, []byte("Content-Length")),
			bytes.EqualFold(k, []byte("Transfer-Encoding")), bytes.EqualFold(k, []byte("Keep-Alive")),
			bytes.EqualFold(k, []byte("Date")):
			continue
		}
		h.Add(string(k), string(v))
	}
}

// metricsRefused decides whether a caller at addr ("IP:port") with the
// Authorization value auth may read PathMetrics; when not, resp holds the
// answer: 401 for a wrong or missing key where a MetricsKey is set, else
// 404 (the path does not exist for remote callers).
func (rt *Router) metricsRefused(addr string, auth []byte, resp *fasthttp.Response) bool {
	if len(rt.metricsKey) > 0 {
		key, ok := bytes.CutPrefix(auth, []byte("Bearer "))
		if ok && subtle.ConstantTimeCompare(bytes.TrimSpace(key), rt.metricsKey) == 1 {
			return false
		}
	}
	if rt.isLocal(addr) {
		return false
	}
	if len(rt.metricsKey) > 0 {
		wire.SetError(resp, http.StatusUnauthorized, "Unauthorized: invalid metrics key")
		resp.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	} else {
		wire.SetError(resp, http.StatusNotFound, "Not found")
	}
	wire.SetRequestID(resp)
	return true
}

// Messages of the router's own responses.
const msgSpillFull = "Too many large request bodies are being received; try again"

func msgNotFound(name string) string { return "Service " + name + " not found" }
func msgOverloaded(name string) string {
	return "Too many requests for service " + name + " (overloaded)"
}
func msgNoReady(name string) string { return "No ready replicas for service " + name }
func msgTimeout(name string, d time.Duration) string {
	return "Scoring request for service " + name + " timed out after " + strconv.FormatInt(d.Milliseconds(), 10) + " ms"
}

// MsgReplicaClosed is the 502 body when a replica dropped the connection
// before answering (it crashed or was killed).
const MsgReplicaClosed = "Replica closed connection before replying"

type pathKind int

const (
	kindScore pathKind = iota
	kindSwagger
)

// parsePath splits /api/v1/service/NAME[/versions/V]/{score,swagger.json}.
func parsePath(p []byte) (name, version []byte, kind pathKind, ok bool) {
	if !bytes.HasPrefix(p, []byte(PathPrefix)) {
		return nil, nil, 0, false
	}
	rest := p[len(PathPrefix):]
	i := bytes.IndexByte(rest, '/')
	if i <= 0 {
		return nil, nil, 0, false
	}
	name, rest = rest[:i], rest[i+1:]
	if bytes.HasPrefix(rest, []byte("versions/")) {
		rest = rest[len("versions/"):]
		j := bytes.IndexByte(rest, '/')
		if j <= 0 {
			return nil, nil, 0, false
		}
		version, rest = rest[:j], rest[j+1:]
	}
	switch string(rest) {
	case "score":
		return name, version, kindScore, true
	case "swagger.json":
		return name, version, kindSwagger, true
	}
	return nil, nil, 0, false
}

// Canonical forms of the request headers the router reads and writes.
// fasthttp canonicalizes request header names as it parses them, so the
// router turns normalizing off and looks these up as they are.
const (
	canonAuthorization = "Authorization"
	canonVersion       = "Aksml-Version"
	canonVersionAlias  = "Azureml-Model-Deployment"
	canonCallerKey     = "Aksml-Caller-Key"
	canonRequestID     = "X-Ms-Request-Id"
)

// handle is the engine-neutral request path. req is modified and becomes
// the upstream request; resp receives the answer. start is when the request
// arrived; noDefaultContentType is the engine's setting for resp.
// With rel set, a chunked or large answer is left to relay (see send).
func (rt *Router) handle(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, start time.Time, noDefaultContentType bool, rel *bodyRelay) {
	var idBuf [36]byte
	id := wire.NewRequestID(idBuf[:0])
	rt.route(ctx, req, resp, start, id, noDefaultContentType, rel)
	resp.Header.SetBytesV(HeaderRequestID, id)
}

func (rt *Router) route(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, start time.Time, id []byte, noDefaultCT bool, rel *bodyRelay) {
	p, ok := rt.prepare(req, resp, id)
	if !ok && p.noReady && rt.awaitRoutable(ctx, p.r.name) {
		// A replica became ready while the request waited (a service
		// starting, or a front-end whose watch is a moment behind).
		resp.Reset()
		resp.Header.SetNoDefaultContentType(noDefaultCT)
		p, ok = rt.prepare(req, resp, id)
	}
	if ok {
		rt.send(ctx, p, req, resp, start, noDefaultCT, rel)
	}
}

// plan is where a request goes: a route, the version chosen, and whether
// the caller named it.
type plan struct {
	r        *compiled
	idx      int
	explicit bool
	kind     pathKind
	// noReady: refused with 503 because no version of r takes live
	// traffic; the request may wait for one (awaitRoutable).
	noReady bool
}

// prepare checks a request (path, method, auth), chooses the version, turns
// req into the upstream request and starts its mirrored copies. When it
// returns false, resp holds the answer.
func (rt *Router) prepare(req *fasthttp.Request, resp *fasthttp.Response, id []byte) (plan, bool) {
	r, versionB, kind, ok := rt.resolve(req.URI().Path(), req.Header.Method(), resp)
	if !ok {
		return plan{}, false
	}
	req.Header.DisableNormalizing()
	p, ok := rt.choose(r, versionB, kind, req.Header.Peek(canonAuthorization), req.Header.Peek(canonVersion),
		req.Header.Peek(canonVersionAlias), req.Header.Peek(canonCallerKey), resp)
	if !ok {
		return p, false
	}
	idx := p.idx

	// Prepare the upstream request.
	req.Header.Del(canonAuthorization)
	// The whole body is read before forwarding: the replica must not
	// answer 100 Continue.
	req.Header.Del("Expect")
	for _, h := range wire.HopHeaders {
		req.Header.Del(h)
	}
	req.Header.Del(canonRequestID) // every one the caller sent
	req.Header.SetBytesV(canonRequestID, id)
	if kind == kindScore {
		req.URI().SetPath("/score")
	} else {
		req.URI().SetPath("/swagger.json")
	}

	if kind == kindScore && !req.IsBodyStream() { // a spilled body is not copied
		for k, m := range r.mirrors {
			if m != idx && r.versions[m].mirrorNow(r.mirrorU[k]) {
				rt.mirror(plan{r: r, idx: m, explicit: true, kind: kindScore}, req)
			}
		}
	}
	return p, true
}

// resolve finds the route of a request path and checks the method. When it
// returns false, resp holds the answer.
func (rt *Router) resolve(path, method []byte, resp *fasthttp.Response) (r *compiled, versionB []byte, kind pathKind, ok bool) {
	nameB, versionB, kind, ok := parsePath(path)
	if !ok {
		wire.SetError(resp, http.StatusNotFound, "Not found")
		return nil, nil, 0, false
	}
	r = rt.table.Load().routes[string(nameB)]
	if r == nil {
		wire.SetError(resp, http.StatusNotFound, msgNotFound(string(nameB)))
		return nil, nil, 0, false
	}
	if string(method) != http.MethodPost && string(method) != http.MethodGet {
		wire.SetError(resp, http.StatusMethodNotAllowed, "Method "+string(method)+" is not allowed; use GET or POST")
		resp.Header.Set("Allow", "GET, POST")
		return nil, nil, 0, false
	}
	return r, versionB, kind, true
}

// choose checks a request's credentials (the Authorization header's value)
// and picks the version: the one named in the path or by the version
// headers, else by the caller key, else the next in the split. When it
// returns false, resp holds the answer.
func (rt *Router) choose(r *compiled, versionB []byte, kind pathKind, auth, version, alias, callerKey []byte, resp *fasthttp.Response) (plan, bool) {
	if kind == kindScore {
		if aerr := rt.checkAuth(r, auth); aerr != nil {
			wire.SetError(resp, http.StatusUnauthorized, "Unauthorized: "+aerr.reason)
			resp.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			return plan{}, false
		}
	}
	explicit := len(versionB) > 0
	if !explicit {
		if len(version) > 0 {
			versionB, explicit = version, true
		} else if len(alias) > 0 {
			versionB, explicit = alias, true
		}
	}
	idx := -1
	if explicit {
		j, ok := r.byName[string(versionB)]
		if !ok {
			wire.SetError(resp, http.StatusNotFound, "Version "+string(versionB)+" not found in service "+r.name)
			return plan{}, false
		}
		idx = j
	} else if kind == kindSwagger {
		idx = r.def
		if !r.routable[idx] && r.sched != nil {
			idx = int(r.sched[0])
		}
	} else if r.sched == nil {
		wire.SetError(resp, http.StatusServiceUnavailable, msgNoReady(r.name))
		return plan{r: r, noReady: true}, false
	} else if len(callerKey) > 0 {
		idx = rendezvous(hashBytes(callerKey), r.weights, r.seeds)
	} else {
		n := r.cursor.Add(1) - 1
		idx = int(r.sched[n%uint64(len(r.sched))])
	}
	return plan{r: r, idx: idx, explicit: explicit, kind: kind}, true
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func closedBeforeReply(err error) bool {
	return errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// mirror sends a copy of req to a replica of vs in the background, if a
// mirror slot and a replica slot are free at once; otherwise the copy is
// dropped. The response is discarded.
func (rt *Router) mirror(p plan, req *fasthttp.Request) {
	vs := p.r.versions[p.idx]
	select {
	case rt.mirrorSem <- struct{}{}:
	default:
		vs.mirrorDropped.Add(1)
		return
	}
	x := &exch{mirror: true}
	x.begin(p, time.Now())
	if !x.tryTake() {
		x.abandon()
		<-rt.mirrorSem
		vs.mirrorDropped.Add(1)
		return
	}
	mreq := fasthttp.AcquireRequest()
	req.CopyTo(mreq)
	rt.mirrorWG.Add(1)
	go func() {
		defer rt.mirrorWG.Done()
		defer func() { <-rt.mirrorSem }()
		resp := fasthttp.AcquireResponse()
		code, done := rt.forward(context.Background(), x, mreq, resp, false, nil)
		x.end(code, done)
		fasthttp.ReleaseResponse(resp)
		fasthttp.ReleaseRequest(mreq)
	}()
}

// ScoringPath is the path of a route's scoring URI: /api/v1/service/NAME/score.
func ScoringPath(name string) string { return PathPrefix + name + "/score" }

// SwaggerPath is the path of a route's swagger URI: /api/v1/service/NAME/swagger.json.
func SwaggerPath(name string) string { return PathPrefix + name + "/swagger.json" }

// VersionScoringPath is the path of one version's scoring URI:
// /api/v1/service/NAME/versions/VERSION/score.
func VersionScoringPath(name, version string) string {
	return PathPrefix + name + "/versions/" + version + "/score"
}

// VersionSwaggerPath is the path of one version's swagger URI.
func VersionSwaggerPath(name, version string) string {
	return PathPrefix + name + "/versions/" + version + "/swagger.json"
}

func orDefault[T time.Duration | int | int64](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// loopbackAddr reports whether addr ("IP:port") is a loopback address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
