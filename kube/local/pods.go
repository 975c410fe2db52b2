package local

import (
	"context"
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
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// A runner starts one run of a container: a process, or a goroutine for
// programs that live in this process (Go models, the front-end). The run
// ends when ctx ends or the program stops on its own; its error is the
// container's exit (nil: exit code 0).
type runner interface {
	run(ctx context.Context, c runContext) error
}

// runContext is what a container run gets: its pod's loopback address,
// its arguments (0.0.0.0 already replaced by that address), environment
// and log.
type runContext struct {
	pod  *corev1.Pod
	ctr  *corev1.Container
	ip   string // loopback address of the pod
	args []string
	env  map[string]string
	log  *logRing
}

// pods is the virtual-kubelet provider of a local cluster's node: it runs
// every container of the pods bound to the node, probes them, restarts
// them with back-off and keeps their logs.
type pods struct {
	node   string
	hostIP string
	c      *Cluster

	mu     sync.Mutex
	pods   map[string]*podRun
	notify func(*corev1.Pod)
	wg     sync.WaitGroup
	client kubernetes.Interface
}

// podRun is a pod on the node and its containers.
type podRun struct {
	pod    *corev1.Pod // as bound, metadata as updated, Status kept current; guarded by pods.mu
	bound  *corev1.Pod // as bound, never changed: what the containers run
	ip     string      // loopback address
	cancel context.CancelFunc
	ctrs   []*container
	start  metav1.Time
	// stopped is closed when every container's supervisor has returned.
	stopped chan struct{}
	// deleting: the pod is going away and stays not ready.
	deleting bool
}

// container is one container's state, guarded by pods.mu.
type container struct {
	name     string
	state    corev1.ContainerState
	last     corev1.ContainerState
	restarts int32
	ready    bool
	started  bool
	logs     *logRing // this run
	previous *logRing // the run before
}

func podKey(ns, name string) string { return ns + "/" + name }

// CreatePod starts the pod's containers.
func (p *pods) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	pod = pod.DeepCopy()
	ip, podIP := p.c.allocIP()
	run := &podRun{pod: pod, bound: pod.DeepCopy(), ip: ip, start: metav1.Now(), stopped: make(chan struct{})}
	pctx, cancel := context.WithCancel(context.Background())
	run.cancel = cancel
	for _, ctr := range pod.Spec.Containers {
		run.ctrs = append(run.ctrs, &container{
			name:  ctr.Name,
			state: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			logs:  newLogRing(),
		})
	}
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodPending, HostIP: p.hostIP, HostIPs: []corev1.HostIP{{IP: p.hostIP}},
		PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}}, StartTime: &run.start,
	}
	p.mu.Lock()
	p.pods[podKey(pod.Namespace, pod.Name)] = run
	p.refresh(run)
	p.mu.Unlock()
	p.publish(run)
	var sup sync.WaitGroup
	for i := range pod.Spec.Containers {
		sup.Add(1)
		go func() {
			defer sup.Done()
			p.supervise(pctx, run, i)
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		sup.Wait()
		close(run.stopped)
	}()
	return nil
}

// supervise runs container i of run until ctx ends, restarting it after
// every exit with the kubelet's exponential back-off (restartPolicy
// Always, the only one Deployments use).
func (p *pods) supervise(ctx context.Context, run *podRun, i int) {
	spec := &run.bound.Spec.Containers[i]
	c := run.ctrs[i]
	r, err := p.c.resolve(run.bound, spec)
	if err != nil {
		p.update(run, func() {
			c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: err.Error()}}
		})
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.c.opts.RestartBackOff):
		}
		p.update(run, func() {
			c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q: %v", spec.Image, err)}}
		})
		<-ctx.Done()
		return
	}
	env := map[string]string{}
	for _, e := range spec.Env {
		env[e.Name] = e.Value
		// The downward API fields a kubelet resolves that aksml's pods use
		// (the pod's name names a replica's telemetry).
		if f := e.ValueFrom; f != nil && f.FieldRef != nil {
			switch f.FieldRef.FieldPath {
			case "metadata.name":
				env[e.Name] = run.bound.Name
			case "metadata.namespace":
				env[e.Name] = run.bound.Namespace
			case "status.podIP":
				env[e.Name] = run.ip
			}
		}
	}
	env["POD_IP"] = run.ip
	args := make([]string, len(spec.Args))
	for j, a := range spec.Args {
		args[j] = strings.ReplaceAll(a, "0.0.0.0", run.ip)
	}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		runCtx, stopRun := context.WithCancel(ctx)
		began := metav1.Now()
		logs := c.logs
		p.update(run, func() {
			c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: began}}
			c.started, c.ready = true, false
		})
		exited := make(chan error, 1)
		go func() {
			exited <- r.run(runCtx, runContext{pod: run.bound, ctr: spec, ip: run.ip, args: args, env: env, log: logs})
		}()
		probes := p.probe(runCtx, run, c, spec)
		var exitErr error
		var reason string
		select {
		case exitErr = <-exited:
		case msg := <-probes:
			reason = "Liveness"
			fmt.Fprintf(logs, "kubelet: %s; the container will be restarted\n", msg)
			stopRun()
			exitErr = <-exited
			if exitErr == nil {
				exitErr = fmt.Errorf("%s", msg)
			}
		case <-ctx.Done():
			// The pod is being deleted: stop serving after the drain
			// delay (the front-end has been told it is not ready).
			p.update(run, func() { c.ready = false })
			select {
			case <-time.After(p.c.opts.DrainDelay):
			case <-exited:
				stopRun()
				return
			}
			stopRun()
			<-exited
			return
		}
		stopRun()
		if ctx.Err() != nil {
			return
		}
		finished := metav1.Now()
		term := &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: began, FinishedAt: finished}
		if exitErr != nil {
			term.ExitCode, term.Reason, term.Message = 1, "Error", exitErr.Error()
			if reason == "Liveness" {
				term.ExitCode = 137
			}
		}
		// A run that lasted ten minutes resets the back-off, as the
		// kubelet's does.
		if finished.Sub(began.Time) >= 10*time.Minute {
			backoff = 0
		}
		if backoff == 0 {
			backoff = p.c.opts.RestartBackOff
		} else {
			backoff = min(2*backoff, p.c.opts.MaxRestartBackOff)
		}
		p.update(run, func() {
			c.last = corev1.ContainerState{Terminated: term}
			c.restarts++
			c.ready, c.started = false, false
			c.previous, c.logs = c.logs, newLogRing()
			c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %v restarting failed container=%s pod=%s_%s(%s)", backoff, spec.Name, run.bound.Name, run.bound.Namespace, run.bound.UID)}}
		})
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// probe runs the container's readiness and liveness probes for one run,
// updating its readiness; the channel yields a message when liveness has
// failed failureThreshold times in a row. Until the container is first
// ready its readiness probe runs every Options.StartupProbeInterval rather
// than every period, so a replica serves as soon as it answers.
func (p *pods) probe(ctx context.Context, run *podRun, c *container, spec *corev1.Container) <-chan string {
	dead := make(chan string, 1)
	if rp := spec.ReadinessProbe; rp != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			succ, fail, everReady := 0, 0, false
			if !p.sleep(ctx, seconds(rp.InitialDelaySeconds)) {
				return
			}
			for {
				err := p.check(ctx, run.ip, rp)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					succ, fail = succ+1, 0
					if succ >= int(max(rp.SuccessThreshold, 1)) {
						everReady = true
						p.update(run, func() { c.ready = !run.deleting })
					}
				} else {
					succ, fail = 0, fail+1
					if fail >= int(max(rp.FailureThreshold, 1)) {
						p.update(run, func() { c.ready = false })
					}
				}
				wait := seconds(max(rp.PeriodSeconds, 1))
				if !everReady {
					wait = min(wait, p.c.opts.StartupProbeInterval)
				}
				if !p.sleep(ctx, wait) {
					return
				}
			}
		}()
	} else {
		p.update(run, func() { c.ready = !run.deleting })
	}
	if lp := spec.LivenessProbe; lp != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if !p.sleep(ctx, seconds(lp.InitialDelaySeconds)) {
				return
			}
			fail := 0
			for {
				err := p.check(ctx, run.ip, lp)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					fail = 0
				} else if fail++; fail >= int(max(lp.FailureThreshold, 1)) {
					dead <- "Liveness probe failed: " + err.Error()
					return
				}
				if !p.sleep(ctx, seconds(max(lp.PeriodSeconds, 1))) {
					return
				}
			}
		}()
	}
	return dead
}

func seconds(s int32) time.Duration { return time.Duration(s) * time.Second }

// sleep waits d on the cluster's clock; false when ctx ended first.
func (p *pods) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// check runs one probe against the pod's loopback address.
func (p *pods) check(ctx context.Context, ip string, pr *corev1.Probe) error {
	timeout := seconds(max(pr.TimeoutSeconds, 1))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case pr.HTTPGet != nil:
		port, err := portOf(pr.HTTPGet.Port)
		if err != nil {
			return err
		}
		url := "http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + pr.HTTPGet.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for _, h := range pr.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := p.c.probeClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		port, err := portOf(pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("probe kind not supported by the local cluster (HTTP GET and TCP socket are)")
}

func portOf(v intstr.IntOrString) (int, error) {
	if v.Type == intstr.Int {
		return v.IntValue(), nil
	}
	return 0, fmt.Errorf("named probe port %q is not supported by the local cluster; give the number", v.StrVal)
}

// update applies f to the pod's state under the lock and publishes the
// resulting status.
func (p *pods) update(run *podRun, f func()) {
	p.mu.Lock()
	f()
	changed := p.refresh(run)
	p.mu.Unlock()
	if changed {
		p.publish(run)
	}
}

// refresh recomputes run.pod.Status from its containers; it reports
// whether anything changed. p.mu is held.
func (p *pods) refresh(run *podRun) bool {
	st := run.pod.Status.DeepCopy()
	allReady, running := true, true
	st.ContainerStatuses = st.ContainerStatuses[:0]
	for i, c := range run.ctrs {
		spec := run.pod.Spec.Containers[i]
		started := c.started
		cs := corev1.ContainerStatus{
			Name: c.name, Image: spec.Image, ImageID: spec.Image,
			ContainerID:  fmt.Sprintf("aksml-local://%s-%d", run.pod.UID, i),
			State:        c.state,
			Ready:        c.ready,
			RestartCount: c.restarts,
			Started:      &started,
		}
		cs.LastTerminationState = c.last
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		allReady = allReady && c.ready
		running = running && c.state.Running != nil
	}
	now := metav1.Now()
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		for _, old := range run.pod.Status.Conditions {
			if old.Type == t && old.Status == s {
				return old
			}
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
		cond(corev1.ContainersReady, allReady), cond(corev1.PodReady, allReady),
	}
	st.Phase = corev1.PodPending
	if running || run.anyStarted() {
		st.Phase = corev1.PodRunning
	}
	if apiequality.Semantic.DeepEqual(&run.pod.Status, st) {
		return false
	}
	run.pod.Status = *st
	return true
}

// anyStarted: a pod is Running once any of its containers has run.
func (r *podRun) anyStarted() bool {
	for _, c := range r.ctrs {
		if c.started || c.restarts > 0 {
			return true
		}
	}
	return false
}

func (p *pods) publish(run *podRun) {
	p.mu.Lock()
	pod := run.pod.DeepCopy()
	notify := p.notify
	p.mu.Unlock()
	if notify != nil {
		notify(pod)
	}
}

// UpdatePod keeps the new spec (the containers keep running, as a
// kubelet's do for changes it cannot apply in place).
func (p *pods) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if run, ok := p.pods[podKey(pod.Namespace, pod.Name)]; ok {
		st := run.pod.Status
		spec := run.pod.Spec
		run.pod = pod.DeepCopy()
		run.pod.Spec, run.pod.Status = spec, st
	}
	return nil
}

// DeletePod reports the pod's containers not ready at once (so the
// front-end stops sending to it), keeps them serving for the drain delay,
// stops them and removes the pod.
func (p *pods) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	k := podKey(pod.Namespace, pod.Name)
	p.mu.Lock()
	run, ok := p.pods[k]
	if ok {
		run.deleting = true
		for _, c := range run.ctrs {
			c.ready = false
		}
		p.refresh(run)
	}
	p.mu.Unlock()
	if !ok {
		return errdefs.NotFoundf("pod %s not found", k)
	}
	p.publish(run)
	run.cancel()
	uid := pod.UID
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.waitStopped(run)
		p.mu.Lock()
		delete(p.pods, k)
		now := metav1.Now()
		for _, c := range run.ctrs {
			c.ready, c.started = false, false
			c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}}
		}
		p.refresh(run)
		run.pod.Status.Phase = corev1.PodSucceeded
		p.mu.Unlock()
		p.publish(run)
		p.c.releaseIP(run.ip)
		// A kubelet removes a pod whose containers have stopped at once
		// (grace 0); virtual-kubelet would wait out the grace period.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		zero := int64(0)
		_ = p.client.CoreV1().Pods(pod.Namespace).Delete(dctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	}()
	return nil
}

// waitStopped waits until every container of run has stopped, or the
// drain delay and a grace period of ten seconds have passed.
func (p *pods) waitStopped(run *podRun) {
	select {
	case <-run.stopped:
	case <-time.After(p.c.opts.DrainDelay + 10*time.Second):
	}
}

// GetPod returns the pod with its current status.
func (p *pods) GetPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	run, ok := p.pods[podKey(ns, name)]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found", ns, name)
	}
	return run.pod.DeepCopy(), nil
}

// GetPodStatus returns the pod's current status.
func (p *pods) GetPodStatus(ctx context.Context, ns, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

// GetPods lists the node's pods.
func (p *pods) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(p.pods))
	for _, run := range p.pods {
		out = append(out, run.pod.DeepCopy())
	}
	return out, nil
}

// NotifyPods makes the provider asynchronous: status changes reach the API
// server as they happen.
func (p *pods) NotifyPods(ctx context.Context, f func(*corev1.Pod)) {
	p.mu.Lock()
	p.notify = f
	p.mu.Unlock()
}

// GetContainerLogs serves a container's output of this run, or of the run
// before with Previous; Tail and LimitBytes as kubectl logs passes them.
func (p *pods) GetContainerLogs(ctx context.Context, ns, name, ctrName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	p.mu.Lock()
	run, ok := p.pods[podKey(ns, name)]
	var ring *logRing
	if ok {
		for _, c := range run.ctrs {
			if c.name == ctrName || ctrName == "" {
				ring = c.logs
				if opts.Previous {
					ring = c.previous
				}
				break
			}
		}
	}
	p.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s not found", ns, name)
	}
	if ring == nil {
		if opts.Previous {
			return nil, errdefs.InvalidInputf("previous terminated container %q in pod %q not found", ctrName, name)
		}
		return nil, errdefs.NotFoundf("container %q not found in pod %s/%s", ctrName, ns, name)
	}
	text := ring.text(opts.Tail)
	if opts.LimitBytes > 0 && len(text) > opts.LimitBytes {
		text = text[len(text)-opts.LimitBytes:]
	}
	return io.NopCloser(strings.NewReader(text)), nil
}

// RunInContainer is not supported: containers are processes and
// goroutines of this host, not namespaces to enter.
func (p *pods) RunInContainer(ctx context.Context, ns, name, container string, cmd []string, attach api.AttachIO) error {
	return errdefs.InvalidInput("exec is not supported by the local cluster")
}

// AttachToContainer is not supported.
func (p *pods) AttachToContainer(ctx context.Context, ns, name, container string, attach api.AttachIO) error {
	return errdefs.InvalidInput("attach is not supported by the local cluster")
}

// GetStatsSummary reports the node with no usage figures.
func (p *pods) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.node}}, nil
}

// GetMetricsResource reports no metrics.
func (p *pods) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

// PortForward is not needed: every pod listens on a loopback address of
// this host (Cluster.PodAddr).
func (p *pods) PortForward(ctx context.Context, ns, pod string, port int32, stream io.ReadWriteCloser) error {
	return errdefs.InvalidInput("port-forward is not needed on the local cluster: pods listen on loopback addresses of this host")
}

// Close stops every pod and waits for their containers.
func (p *pods) Close() error {
	p.mu.Lock()
	for _, run := range p.pods {
		run.cancel()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}
