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
// over when that one is not ready. It writes its address into the
// Service's status.loadBalancer, as a cloud controller would.
type loadBalancer struct {
	c      *Cluster
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	targets []string // ready front-end pods, host addresses, sorted
	conns   map[net.Conn]struct{}
}

func newLoadBalancer(addr string, c *Cluster) (*loadBalancer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errcode.Wrap(errcode.Unavailable, err)
	}
	return &loadBalancer{c: c, ln: ln, conns: map[net.Conn]struct{}{}}, nil
}

func (lb *loadBalancer) url() string { return "http://" + lb.ln.Addr().String() }

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
		var targets []string
		for _, o := range inf.GetStore().List() {
			s := o.(*discoveryv1.EndpointSlice)
			port := int32(kube.FrontEndPort)
			for _, p := range s.Ports {
				if p.Port != nil {
					port = *p.Port
				}
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, a := range e.Addresses {
					targets = append(targets, net.JoinHostPort(lb.c.PodAddr(a), strconv.Itoa(int(port))))
				}
			}
		}
		slices.Sort(targets)
		lb.mu.Lock()
		lb.targets = targets
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
	lb.wg.Add(2)
	go func() {
		defer lb.wg.Done()
		<-wctx.Done()
		f.Shutdown()
	}()
	go func() {
		defer lb.wg.Done()
		lb.accept()
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
// it as EXTERNAL-IP).
func (lb *loadBalancer) publish(ctx context.Context) {
	host, port, _ := net.SplitHostPort(lb.ln.Addr().String())
	p, _ := strconv.Atoi(port)
	svcs := lb.c.cp.Client.CoreV1().Services(kube.DefaultNamespace)
	svc, err := svcs.Get(ctx, kube.FrontEndName, metav1.GetOptions{})
	if err != nil {
		return
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: host, Ports: []corev1.PortStatus{{Port: int32(p), Protocol: corev1.ProtocolTCP}}}}
	_, _ = svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{})
}

func (lb *loadBalancer) accept() {
	for {
		conn, err := lb.ln.Accept()
		if err != nil {
			return
		}
		lb.mu.Lock()
		lb.conns[conn] = struct{}{}
		lb.mu.Unlock()
		lb.wg.Add(1)
		go func() {
			defer lb.wg.Done()
			lb.proxy(conn)
			lb.mu.Lock()
			delete(lb.conns, conn)
			lb.mu.Unlock()
		}()
	}
}

// proxy joins conn to a ready front-end pod, trying each once.
func (lb *loadBalancer) proxy(conn net.Conn) {
	defer conn.Close()
	lb.mu.Lock()
	targets := lb.targets
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
