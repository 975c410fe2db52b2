package local

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
)

// loadBalancer is the local cluster's stand-in for the Azure load balancer
// in front of azureml-fe: a TCP proxy on a host loopback address over the
// front-end's ready pods, as listed in its Service's EndpointSlices. It
// keeps each client address on one front-end pod — Azure Load Balancer's
// Client IP (SourceIP) distribution — so one client's requests meet one
// front-end's count of each replica's requests in flight (the
// max-concurrent-requests limit is per front-end pod); another pod takes
// over when that one is not ready. It has two listeners, as the Service
// has two ports: plain HTTP to the pods' port "http" and HTTPS (the
// Service's port 443, passed through as TCP: the front end terminates
// TLS) to their port "https". It writes its address into the Service's
// status.loadBalancer, as a cloud controller would.
type loadBalancer struct {
	c      *Cluster
	ln     net.Listener // HTTP
	tln    net.Listener // HTTPS
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	targets    []string // ready front-end pods' HTTP ports, host addresses, sorted
	tlsTargets []string // the same pods' HTTPS ports
	conns      map[net.Conn]struct{}
}

// newLoadBalancer listens on addr for HTTP and on tlsAddr for HTTPS (a
// free port of addr's host when tlsAddr is empty).
func newLoadBalancer(addr, tlsAddr string, c *Cluster) (*loadBalancer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errcode.Wrap(errcode.Unavailable, err)
	}
	if tlsAddr == "" {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		tlsAddr = net.JoinHostPort(host, "0")
	}
	tln, err := net.Listen("tcp", tlsAddr)
	if err != nil {
		ln.Close()
		return nil, errcode.Wrap(errcode.Unavailable, err)
	}
	return &loadBalancer{c: c, ln: ln, tln: tln, conns: map[net.Conn]struct{}{}}, nil
}

func (lb *loadBalancer) url() string { return "http://" + lb.ln.Addr().String() }

// tlsAddr is the address of the HTTPS listener.
func (lb *loadBalancer) tlsAddr() string { return lb.tln.Addr().String() }

// run watches the front-end's EndpointSlices, publishes the address and
// starts accepting; it returns once a front-end pod is ready (or ctx ends).
func (lb *loadBalancer) run(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.Background())
	lb.cancel = cancel
	ns := kube.DefaultNamespace
	f := informers.NewSharedInformerFactoryWithOptions(lb.c.cp.Client, 10*time.Minute, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + kube.FrontEndName
		}))
	inf := f.Discovery().V1().EndpointSlices().Informer()
	ready := make(chan struct{})
	var once sync.Once
	refresh := func() {
		var targets, tlsTargets []string
		for _, o := range inf.GetStore().List() {
			s := o.(*discoveryv1.EndpointSlice)
			port, tlsPort := int32(kube.FrontEndPort), int32(kube.FrontEndTLSPort)
			for _, p := range s.Ports {
				switch {
				case p.Port == nil:
				case p.Name != nil && *p.Name == "https":
					tlsPort = *p.Port
				case p.Name == nil || *p.Name == "http" || *p.Name == "":
					port = *p.Port
				}
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, a := range e.Addresses {
					targets = append(targets, net.JoinHostPort(lb.c.PodAddr(a), strconv.Itoa(int(port))))
					tlsTargets = append(tlsTargets, net.JoinHostPort(lb.c.PodAddr(a), strconv.Itoa(int(tlsPort))))
				}
			}
		}
		slices.Sort(targets)
		slices.Sort(tlsTargets)
		lb.mu.Lock()
		lb.targets, lb.tlsTargets = targets, tlsTargets
		lb.mu.Unlock()
		if len(targets) > 0 {
			once.Do(func() { close(ready) })
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { refresh() },
		UpdateFunc: func(any, any) { refresh() },
		DeleteFunc: func(any) { refresh() },
	})
	f.Start(wctx.Done())
	lb.wg.Add(3)
	go func() {
		defer lb.wg.Done()
		<-wctx.Done()
		f.Shutdown()
	}()
	go func() {
		defer lb.wg.Done()
		lb.accept(lb.ln, false)
	}()
	go func() {
		defer lb.wg.Done()
		lb.accept(lb.tln, true)
	}()
	lb.publish(ctx)
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return errcode.Wrap(errcode.DeadlineExceeded, errors.Join(errors.New("the front-end did not become ready"), ctx.Err()))
	}
}

// publish records the load balancer's address in the front-end Service's
// status, as the cloud's service controller does (kubectl get svc shows
// it as EXTERNAL-IP): the HTTP port, then the HTTPS port.
func (lb *loadBalancer) publish(ctx context.Context) {
	host, port, _ := net.SplitHostPort(lb.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	tp := lb.tln.Addr().(*net.TCPAddr).Port
	svcs := lb.c.cp.Client.CoreV1().Services(kube.DefaultNamespace)
	svc, err := svcs.Get(ctx, kube.FrontEndName, metav1.GetOptions{})
	if err != nil {
		return
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: host, Ports: []corev1.PortStatus{
		{Port: int32(p), Protocol: corev1.ProtocolTCP}, {Port: int32(tp), Protocol: corev1.ProtocolTCP},
	}}}
	_, _ = svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{})
}

// accept takes connections on ln, to the pods' HTTPS ports for tls.
func (lb *loadBalancer) accept(ln net.Listener, tls bool) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		lb.mu.Lock()
		lb.conns[conn] = struct{}{}
		lb.mu.Unlock()
		lb.wg.Add(1)
		go func() {
			defer lb.wg.Done()
			lb.proxy(conn, tls)
			lb.mu.Lock()
			delete(lb.conns, conn)
			lb.mu.Unlock()
		}()
	}
}

// proxy joins conn to a ready front-end pod, trying each once: its HTTPS
// port for tls. The client's address picks the same pod for both ports.
func (lb *loadBalancer) proxy(conn net.Conn, tls bool) {
	defer conn.Close()
	lb.mu.Lock()
	targets := lb.targets
	if tls {
		targets = lb.tlsTargets
	}
	lb.mu.Unlock()
	var up net.Conn
	h := fnv.New32a()
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	_, _ = h.Write([]byte(host))
	start := int(h.Sum32() % uint32(max(len(targets), 1)))
	for i := range targets {
		t := targets[(start+i)%len(targets)]
		c, err := net.DialTimeout("tcp", t, 2*time.Second)
		if err == nil {
			up = c
			break
		}
	}
	if up == nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, conn)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(conn, up)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	<-done
}

// close stops accepting, ends open connections and waits.
func (lb *loadBalancer) close() {
	_ = lb.ln.Close()
	_ = lb.tln.Close()
	if lb.cancel != nil {
		lb.cancel()
	}
	lb.mu.Lock()
	for c := range lb.conns {
		_ = c.Close()
	}
	lb.mu.Unlock()
	lb.wg.Wait()
}
