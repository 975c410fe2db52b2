package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/aksml/aksml/compute/driver"
)

// AKS node labels and the GPU resource the harness gives its nodes, as an
// AKS cluster's nodes carry them.
const (
	LabelAccelerator = "kubernetes.azure.com/accelerator"
	LabelAgentPool   = "kubernetes.azure.com/agentpool"
	LabelInstance    = "node.kubernetes.io/instance-type"
	ResourceGPU      = "nvidia.com/gpu"
	// ResourceFPGA is the FPGA extended resource the kube driver requests by
	// default (kube.DefaultFPGAResource; the AKS name is unconfirmed).
	ResourceFPGA = "microsoft.com/fpga_catapult"
)

// NodeSpec is a node to register: its size, labels and taints.
type NodeSpec struct {
	Name     string
	MilliCPU int64
	MemoryGB float64
	GPUs     int
	FPGAs    int
	MaxPods  int // 0 means 110
	Labels   map[string]string
	Taints   []corev1.Taint
}

// NodesForShape returns the nodes of an AKS agent pool of the given shape:
// AgentCount nodes named aks-nodepool1-N with the shape's vCPUs and memory,
// the instance-type and agent-pool labels and, when the shape has GPUs, the
// nvidia.com/gpu capacity, the label kubernetes.azure.com/accelerator=nvidia
// and the taint nvidia.com/gpu=present:NoSchedule (as aks-engine's GPU pools
// have it), so only pods that tolerate it land there; when it has FPGAs,
// that many of ResourceFPGA.
func NodesForShape(shape driver.ClusterShape) []NodeSpec {
	var out []NodeSpec
	for i := range shape.AgentCount {
		n := NodeSpec{
			Name:     fmt.Sprintf("aks-nodepool1-%d", i),
			MilliCPU: int64(shape.VCPUs) * 1000,
			MemoryGB: shape.MemoryGB,
			GPUs:     shape.GPUs,
			FPGAs:    shape.FPGAs,
			Labels: map[string]string{
				LabelAgentPool: "nodepool1",
				LabelInstance:  shape.VMSize,
			},
		}
		if shape.GPUs > 0 {
			n.Labels[LabelAccelerator] = "nvidia"
			n.Taints = []corev1.Taint{{Key: ResourceGPU, Value: "present", Effect: corev1.TaintEffectNoSchedule}}
		}
		out = append(out, n)
	}
	return out
}

// Behavior is what a pod does on a harness node.
type Behavior int

// Pod behaviours.
const (
	// Ready: the containers run and are ready.
	Ready Behavior = iota
	// NotReady: the containers run but their readiness probe fails.
	NotReady
	// CrashLoop: the main container keeps exiting; the pod reports
	// CrashLoopBackOff with Restarts restarts.
	CrashLoop
	// ImagePull: the image cannot be pulled (ImagePullBackOff).
	ImagePull
)

// PodOutcome is how a pod behaves on a harness node, and the log lines it
// writes.
type PodOutcome struct {
	Behavior Behavior
	Restarts int32
	// Message is the container's waiting or termination message.
	Message string
	// Logs are the container's output; Previous that of its last run.
	Logs, Previous []string
	// Serve, when set, makes the pod really run: the node calls it as the
	// pod starts, serves the handler it returns over HTTP on a loopback
	// port (ControlPlane.ReplicaAddr maps the pod's IP to that address),
	// and reports the pod Running but not ready until ready yields: nil
	// makes it ready, an error makes it CrashLoopBackOff with Restarts
	// restarts (at least 1) and the error as the termination message. ctx
	// ends when the pod is deleted.
	Serve func(ctx context.Context) (h http.Handler, ready <-chan error)
}

// Node is a virtual-kubelet node registered with a ControlPlane. On a node
// of AddNode, pods bound to it run as their PodOutcome says and nothing is
// executed; a node of RegisterNode runs them as its provider does.
type Node struct {
	Name   string
	cancel context.CancelFunc
	node   *nodeutil.Node
	prov   nodeutil.Provider
}

// AddNode registers a node through virtual-kubelet and waits until it is
// Ready. The node serves the kubelet API (logs) over TLS on the control
// plane's IP.
func (cp *ControlPlane) AddNode(spec NodeSpec) (*Node, error) {
	pods := cp.pods
	if pods == nil {
		pods = func(*corev1.Pod) PodOutcome { return PodOutcome{Behavior: Ready} }
	}
	prov := &provider{node: spec.Name, ip: cp.IP, outcome: pods, pods: map[string]*corev1.Pod{}, notify: func(*corev1.Pod) {}, client: cp.Client, cp: cp, running: map[string]*served{}}
	return cp.RegisterNode(spec, prov)
}

// RegisterNode registers a node whose pods p runs (virtual-kubelet's
// provider interface; asynchronous when p also has NotifyPods) and waits
// until it is Ready. The node's address is the control plane's IP; it
// serves the kubelet API (logs) over TLS there on a port of its own. When
// the control plane closes, the node stops and then p's Close method, if
// it has one, is called.
func (cp *ControlPlane) RegisterNode(spec NodeSpec, p nodeutil.Provider) (*Node, error) {
	port := cp.nextPort()
	certPEM, keyPEM, err := cp.pki.issue("kubelet-"+spec.Name, spec.Name, []net.IP{net.ParseIP(cp.IP)}, []string{spec.Name}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	maxPods := spec.MaxPods
	if maxPods == 0 {
		maxPods = 110
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(spec.MilliCPU, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(int64(spec.MemoryGB*(1<<30)), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(int64(maxPods), resource.DecimalSI),
	}
	if spec.GPUs > 0 {
		capacity[ResourceGPU] = *resource.NewQuantity(int64(spec.GPUs), resource.DecimalSI)
	}
	if spec.FPGAs > 0 {
		capacity[ResourceFPGA] = *resource.NewQuantity(int64(spec.FPGAs), resource.DecimalSI)
	}
	mux := http.NewServeMux()
	vk, err := nodeutil.NewNode(spec.Name, func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		n := pc.Node
		for k, v := range spec.Labels {
			n.Labels[k] = v
		}
		n.Labels["kubernetes.io/os"] = "linux"
		n.Labels["kubernetes.io/arch"] = "amd64"
		n.Spec.Taints = spec.Taints
		n.Status.Capacity = capacity
		n.Status.Allocatable = capacity.DeepCopy()
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: cp.IP}, {Type: corev1.NodeHostName, Address: spec.Name}}
		n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
		n.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: "v" + KubeVersion, OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: "aksml-kubetest://1"}
		return p, nil, nil
	},
		nodeutil.WithClient(cp.Client),
		nodeutil.AttachProviderRoutes(mux),
		func(c *nodeutil.NodeConfig) error {
			c.HTTPListenAddr = net.JoinHostPort(cp.IP, strconv.Itoa(port))
			c.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
			c.Handler = mux
			c.NumWorkers = 2
			c.InformerResyncPeriod = time.Minute
			return nil
		},
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	node := &Node{Name: spec.Name, cancel: cancel, node: vk, prov: p}
	go func() { _ = vk.Run(ctx) }()
	if err := vk.WaitReady(ctx, 30*time.Second); err != nil {
		cancel()
		<-vk.Done()
		return nil, err
	}
	cp.mu.Lock()
	cp.nodes = append(cp.nodes, node)
	cp.mu.Unlock()
	return node, nil
}

func (n *Node) stop() {
	n.cancel()
	<-n.node.Done()
	if c, ok := n.prov.(interface{ Close() error }); ok {
		_ = c.Close()
	}
}

// Close stops the pods' servers and waits for the provider's goroutines.
func (p *provider) Close() error {
	p.mu.Lock()
	for k, s := range p.running {
		s.cancel()
		delete(p.running, k)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// provider is the virtual-kubelet provider of a harness node: it records
// the pods bound to the node and reports the status their PodOutcome
// dictates.
type provider struct {
	node, ip string
	outcome  func(*corev1.Pod) PodOutcome

	mu       sync.Mutex
	pods     map[string]*corev1.Pod
	outcomes map[string]PodOutcome
	notify   func(*corev1.Pod)
	client   kubernetes.Interface
	wg       sync.WaitGroup
	cp       *ControlPlane
	running  map[string]*served
}

// served is a pod's HTTP server.
type served struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func podKey(ns, name string) string { return ns + "/" + name }

func (p *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	out := p.outcome(pod)
	p.mu.Lock()
	pod = pod.DeepCopy()
	initial := out
	if out.Serve != nil {
		initial.Behavior = NotReady
	}
	pod.Status = p.status(pod, initial, p.cp.nextPodIP())
	if p.outcomes == nil {
		p.outcomes = map[string]PodOutcome{}
	}
	p.pods[podKey(pod.Namespace, pod.Name)] = pod
	p.outcomes[podKey(pod.Namespace, pod.Name)] = out
	notify := p.notify
	p.mu.Unlock()
	notify(pod.DeepCopy())
	if out.Serve != nil {
		if err := p.serve(pod, out); err != nil {
			return err
		}
	}
	return nil
}

// serve starts the pod's HTTP server and reports readiness as it comes.
func (p *provider) serve(pod *corev1.Pod, out PodOutcome) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h, ready := out.Serve(ctx)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	s := &served{cancel: cancel, done: make(chan struct{})}
	key := podKey(pod.Namespace, pod.Name)
	podIP := pod.Status.PodIP
	p.mu.Lock()
	p.running[key] = s
	p.mu.Unlock()
	p.cp.setReplica(podIP, ln.Addr().String())
	go func() { _ = srv.Serve(ln) }()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(s.done)
		var initErr error
		select {
		case initErr = <-ready:
		case <-ctx.Done():
		}
		if ctx.Err() == nil {
			p.mu.Lock()
			cur, ok := p.pods[key]
			if ok {
				cur = cur.DeepCopy()
				res := out
				if initErr != nil {
					res.Behavior, res.Message = CrashLoop, initErr.Error()
					res.Restarts = max(res.Restarts, 1)
				} else {
					res.Behavior = Ready
				}
				st := p.status(cur, res, 0)
				st.PodIP, st.PodIPs = cur.Status.PodIP, cur.Status.PodIPs
				cur.Status = st
				p.pods[key] = cur
				p.outcomes[key] = res
			}
			notify := p.notify
			p.mu.Unlock()
			if ok {
				notify(cur.DeepCopy())
			}
		}
		<-ctx.Done()
		// Let the front-end see the endpoint go before the server stops.
		time.Sleep(drainDelay)
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
		p.cp.setReplica(podIP, "")
	}()
	return nil
}

// drainDelay is how long a deleted pod's server keeps answering, as a
// container's preStop pause would.
const drainDelay = time.Second

func (p *provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.pods[podKey(pod.Namespace, pod.Name)]; ok {
		st := old.Status
		old = pod.DeepCopy()
		old.Status = st
		p.pods[podKey(pod.Namespace, pod.Name)] = old
	}
	return nil
}

func (p *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	k := podKey(pod.Namespace, pod.Name)
	cur, ok := p.pods[k]
	if !ok {
		p.mu.Unlock()
		return errdefs.NotFoundf("pod %s not found", k)
	}
	delete(p.pods, k)
	delete(p.outcomes, k)
	if s, ok := p.running[k]; ok {
		delete(p.running, k)
		s.cancel()
	}
	notify := p.notify
	p.mu.Unlock()
	cur = cur.DeepCopy()
	now := metav1.Now()
	cur.Status.Phase = corev1.PodSucceeded
	for i := range cur.Status.ContainerStatuses {
		cs := &cur.Status.ContainerStatuses[i]
		cs.Ready = false
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", FinishedAt: now, StartedAt: now}}
	}
	notify(cur)
	// A kubelet removes a pod whose containers have stopped at once (grace
	// 0); virtual-kubelet would wait out the whole grace period.
	uid := pod.UID
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		zero := int64(0)
		_ = p.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	}()
	return nil
}

func (p *provider) GetPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod, ok := p.pods[podKey(ns, name)]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found", ns, name)
	}
	return pod.DeepCopy(), nil
}

func (p *provider) GetPodStatus(ctx context.Context, ns, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(p.pods))
	for _, pod := range p.pods {
		out = append(out, pod.DeepCopy())
	}
	return out, nil
}

// NotifyPods makes the provider asynchronous: status changes reach the API
// server at once rather than at the next poll.
func (p *provider) NotifyPods(ctx context.Context, f func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = f
	p.mu.Unlock()
}

func (p *provider) status(pod *corev1.Pod, out PodOutcome, seq int) corev1.PodStatus {
	now := metav1.Now()
	ready := out.Behavior == Ready
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
	}
	st := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    p.ip,
		HostIPs:   []corev1.HostIP{{IP: p.ip}},
		PodIP:     fmt.Sprintf("10.244.%d.%d", (seq/250)%250, seq%250+1),
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
			cond(corev1.ContainersReady, ready), cond(corev1.PodReady, ready),
		},
	}
	st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	if out.Behavior == ImagePull {
		st.Phase = corev1.PodPending
	}
	for i, c := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image,
			ContainerID: fmt.Sprintf("aksml-kubetest://%s-%d", pod.UID, i),
			Ready:       ready,
		}
		started := true
		switch out.Behavior {
		case Ready, NotReady:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		case CrashLoop:
			started = false
			cs.RestartCount = out.Restarts
			msg := fmt.Sprintf("back-off 5m0s restarting failed container=%s pod=%s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: msg}
			cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: out.Message, StartedAt: now, FinishedAt: now}
		case ImagePull:
			started = false
			msg := out.Message
			if msg == "" {
				msg = fmt.Sprintf("Back-off pulling image %q", c.Image)
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: msg}
		}
		cs.Started = &started
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	return st
}

func (p *provider) GetContainerLogs(ctx context.Context, ns, name, container string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	p.mu.Lock()
	out, ok := p.outcomes[podKey(ns, name)]
	p.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found", ns, name)
	}
	lines := out.Logs
	if opts.Previous {
		lines = out.Previous
	}
	if opts.Tail > 0 && len(lines) > opts.Tail {
		lines = lines[len(lines)-opts.Tail:]
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return io.NopCloser(strings.NewReader(b.String())), nil
}

func (p *provider) RunInContainer(ctx context.Context, ns, name, container string, cmd []string, attach api.AttachIO) error {
	return errdefs.InvalidInput("exec is not supported by the control plane's virtual nodes")
}

func (p *provider) AttachToContainer(ctx context.Context, ns, name, container string, attach api.AttachIO) error {
	return errdefs.InvalidInput("attach is not supported by the control plane's virtual nodes")
}

func (p *provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.node}}, nil
}

func (p *provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

func (p *provider) PortForward(ctx context.Context, ns, pod string, port int32, stream io.ReadWriteCloser) error {
	return errdefs.InvalidInput("port-forward is not supported by the control plane's virtual nodes")
}
