package fe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/kube"
)

// Options configure a FrontEnd; nil means defaults.
type Options struct {
	// Namespace limits the watch to one namespace; empty means all.
	Namespace string
	// Logger receives route changes (never keys); default discard.
	Logger *slog.Logger
	// Resync is the informers' resync period; default 10 minutes.
	Resync time.Duration
	// ReplicaURL maps an endpoint address and port to the URL the router
	// dials; default http://ADDRESS:PORT. A front-end outside the cluster
	// network uses it to reach pods through whatever forwards to them.
	ReplicaURL func(address string, port int32) string
	// Clock drives the autoscaler; default the real clock. Sample is how
	// often it reads the router's load; default 100 ms.
	Clock  clock.WithTicker
	Sample time.Duration
	// TLSNamespace holds the front end's certificate, the Secret
	// kube.FrontEndTLSSecret; default kube.DefaultNamespace. HTTPSPort is
	// the port clients reach HTTPS on (a load balancer's), where plain
	// HTTP is redirected while a certificate is served; default 443.
	TLSNamespace string
	HTTPSPort    int
}

// FrontEnd keeps a frontend.Router's routing table and certificate in step
// with the cluster, from watches: the front end's certificate (the Secret
// kube.FrontEndTLSSecret in Options.TLSNamespace, tls.go), each service's
// Secret (auth, keys, version order), its Deployments (the route settings in their
// annotations), its EndpointSlices (replica addresses and readiness) and
// its Pods. A pod being deleted (its deletion timestamp set) leaves the
// route as soon as the API server records the deletion, without waiting
// for the EndpointSlice controller to mark its endpoint not ready: on a
// busy control plane that update can come seconds later, after the
// replica has drained and stopped, and requests sent to it meanwhile
// would fail.
// Its autoscaler samples the router's load of every autoscaled version
// and writes the decision (package autoscale) to the Deployment's scale
// subresource. It is the control loop of the in-cluster front-end
// (cmd/aksml-fe), and runs as well out of cluster.
type FrontEnd struct {
	router *frontend.Router
	log    *slog.Logger
	url    func(string, int32) string
	client kubernetes.Interface
	clock  clock.WithTicker
	sample time.Duration

	factory   informers.SharedInformerFactory
	tlsFac    informers.SharedInformerFactory
	httpsPort int
	secrets   cache.SharedIndexInformer
	// tlsSecrets watches the front end's certificate (tls.go).
	tlsSecrets cache.SharedIndexInformer
	deps       cache.SharedIndexInformer
	slices     cache.SharedIndexInformer
	pods       cache.SharedIndexInformer
	mu         sync.Mutex
	dirty      map[string]bool // service names to rebuild
	kick       chan struct{}
	synced     chan struct{}
	syncOnce   sync.Once
	routesMu   sync.Mutex
	installed  map[string]bool
}

// New returns a FrontEnd that programs router from the cluster of
// client. Call Run to start it.
func New(client kubernetes.Interface, router *frontend.Router, opts *Options) *FrontEnd {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Resync <= 0 {
		o.Resync = 10 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Sample <= 0 {
		o.Sample = 100 * time.Millisecond
	}
	if o.TLSNamespace == "" {
		o.TLSNamespace = kube.DefaultNamespace
	}
	if o.HTTPSPort <= 0 {
		o.HTTPSPort = 443
	}
	if o.ReplicaURL == nil {
		o.ReplicaURL = func(a string, port int32) string { return "http://" + net.JoinHostPort(a, strconv.Itoa(int(port))) }
	}
	sel := labels.Set{kube.LabelManagedBy: kube.ManagedBy}.String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, o.Resync,
		informers.WithNamespace(o.Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = sel }))
	f := &FrontEnd{
		router: router, log: o.Logger, factory: factory, url: o.ReplicaURL,
		client: client, clock: o.Clock, sample: o.Sample, httpsPort: o.HTTPSPort,
		secrets:   factory.Core().V1().Secrets().Informer(),
		deps:      factory.Apps().V1().Deployments().Informer(),
		slices:    factory.Discovery().V1().EndpointSlices().Informer(),
		pods:      factory.Core().V1().Pods().Informer(),
		dirty:     map[string]bool{},
		kick:      make(chan struct{}, 1),
		synced:    make(chan struct{}),
		installed: map[string]bool{},
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    f.enqueue,
		UpdateFunc: func(_, obj any) { f.enqueue(obj) },
		DeleteFunc: f.enqueue,
	}
	for _, inf := range []cache.SharedIndexInformer{f.secrets, f.deps, f.slices, f.pods} {
		_, _ = inf.AddEventHandler(h)
	}
	f.tlsFac = newTLSInformer(f, o.TLSNamespace, o.Resync)
	return f
}

func (f *FrontEnd) enqueue(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, err := metaOf(obj)
	if err != nil {
		return
	}
	name := m.GetLabels()[kube.LabelService]
	if name == "" {
		return
	}
	f.mu.Lock()
	f.dirty[name] = true
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("not an object: %T", obj)
	}
	return m, nil
}

// Synced is closed once the first full routing table is installed.
func (f *FrontEnd) Synced() <-chan struct{} { return f.synced }

// Run watches the cluster and updates the router until ctx ends. It
// returns ctx's error, or Unavailable when the caches cannot sync.
func (f *FrontEnd) Run(ctx context.Context) error {
	f.factory.Start(ctx.Done())
	defer f.factory.Shutdown()
	f.tlsFac.Start(ctx.Done())
	defer f.tlsFac.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), f.secrets.HasSynced, f.deps.HasSynced, f.slices.HasSynced, f.pods.HasSynced, f.tlsSecrets.HasSynced) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errcode.New(errcode.Unavailable, "front-end: watches did not sync")
	}
	scaled := make(chan struct{})
	go func() { defer close(scaled); f.autoscaleLoop(ctx) }()
	defer func() { <-scaled }()
	for {
		f.mu.Lock()
		names := make([]string, 0, len(f.dirty))
		for n := range f.dirty {
			names = append(names, n)
		}
		clear(f.dirty)
		f.mu.Unlock()
		for _, n := range names {
			f.sync(n)
		}
		f.syncOnce.Do(func() { close(f.synced) })
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.kick:
		}
	}
}

// sync rebuilds the route of service name from the caches.
func (f *FrontEnd) sync(name string) {
	route, ok := f.routeFor(name)
	if !ok {
		f.routesMu.Lock()
		had := f.installed[name]
		delete(f.installed, name)
		f.routesMu.Unlock()
		if had {
			if err := f.router.RemoveRoute(name); err != nil && !errors.Is(err, errcode.NotFound) {
				f.log.Warn("front-end: remove route", "service", name, "err", err)
			}
			f.log.Info("front-end: route removed", "service", name)
		}
		return
	}
	if err := f.router.SetRoute(route); err != nil {
		f.log.Warn("front-end: set route", "service", name, "err", err)
		return
	}
	f.routesMu.Lock()
	f.installed[name] = true
	f.routesMu.Unlock()
}

// routeFor builds the route of service name; false when the service (its
// Secret) is gone or has no versions yet.
func (f *FrontEnd) routeFor(name string) (frontend.Route, bool) {
	var root *corev1.Secret
	for _, obj := range f.secrets.GetStore().List() {
		s := obj.(*corev1.Secret)
		if s.Name == kube.SecretName(name) && s.Labels[kube.LabelService] == name && s.DeletionTimestamp == nil {
			root = s
			break
		}
	}
	if root == nil {
		return frontend.Route{}, false
	}
	ns := root.Namespace
	route := frontend.Route{Name: name}
	switch driver.AuthMode(root.Annotations[kube.AnnotationAuthMode]) {
	case driver.AuthKey:
		route.Auth = frontend.Auth{Mode: frontend.AuthKey, PrimaryKey: string(root.Data[kube.SecretPrimaryKey]), SecondaryKey: string(root.Data[kube.SecretSecondaryKey])}
	case driver.AuthToken:
		route.Auth = frontend.Auth{Mode: frontend.AuthToken}
	}
	deps := map[string]*appsv1.Deployment{}
	for _, obj := range f.deps.GetStore().List() {
		d := obj.(*appsv1.Deployment)
		if d.Namespace == ns && d.Labels[kube.LabelService] == name && d.DeletionTimestamp == nil {
			deps[d.Labels[kube.LabelVersion]] = d
		}
	}
	replicas := map[string][]frontend.Replica{}
	for _, obj := range f.slices.GetStore().List() {
		es := obj.(*discoveryv1.EndpointSlice)
		if es.Namespace != ns || es.Labels[kube.LabelService] != name {
			continue
		}
		port := int32(kube.ScoringPort)
		for _, p := range es.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "http") {
				port = *p.Port
			}
		}
		v := es.Labels[kube.LabelVersion]
		for _, ep := range es.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			id := ""
			if ep.TargetRef != nil {
				id = ep.TargetRef.Name
				if ep.TargetRef.Kind == "Pod" && f.terminating(ns, id) {
					ready = false
				}
			}
			for _, a := range ep.Addresses {
				if id == "" {
					id = a
				}
				replicas[v] = append(replicas[v], frontend.Replica{ID: id, URL: f.url(a, port), Ready: ready})
			}
		}
	}
	for _, vn := range kube.Versions(root) {
		d, ok := deps[vn]
		if !ok {
			continue
		}
		route.Versions = append(route.Versions, versionOf(vn, d.Annotations, replicas[vn]))
	}
	if len(route.Versions) == 0 {
		return frontend.Route{}, false
	}
	return route, true
}

// terminating reports whether pod ns/name is being deleted, as the pods
// watch last saw it. A pod the watch does not know is not terminating:
// the EndpointSlice stays the authority on readiness.
func (f *FrontEnd) terminating(ns, name string) bool {
	obj, ok, err := f.pods.GetStore().GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return false
	}
	p, ok := obj.(*corev1.Pod)
	return ok && p.DeletionTimestamp != nil
}

// versionOf is a route version from a Deployment's route annotations and
// its replicas (sorted by ID). Annotations that do not parse count as
// unset (zero: the router's defaults).
func versionOf(name string, a map[string]string, rs []frontend.Replica) frontend.Version {
	num := func(k string) float64 {
		x, err := strconv.ParseFloat(a[k], 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			return 0
		}
		return x
	}
	msDur := func(k string) time.Duration {
		x := num(k)
		if x > float64(math.MaxInt64/int64(time.Millisecond)) {
			return 0
		}
		return time.Duration(x) * time.Millisecond
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(x, y frontend.Replica) int { return strings.Compare(x.ID, y.ID) })
	mc := num(kube.AnnotationMaxConcurrent)
	if mc > math.MaxInt32 {
		mc = 0
	}
	return frontend.Version{
		Name:                    name,
		TrafficPercent:          min(num(kube.AnnotationTraffic), 100),
		IsDefault:               a[kube.AnnotationDefault] == "true",
		MirrorPercent:           min(num(kube.AnnotationMirror), 100),
		Replicas:                rs,
		MaxConcurrentPerReplica: int(mc),
		MaxQueueWait:            msDur(kube.AnnotationMaxQueueWait),
		ScoringTimeout:          msDur(kube.AnnotationScoringTimeout),
	}
}
