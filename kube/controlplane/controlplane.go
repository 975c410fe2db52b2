package controlplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/childproc"
)

// KubeVersion is the Kubernetes release scripts/kubebins builds and New
// runs.
const KubeVersion = "1.37.2"

// Binaries are the programs New needs in BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}

// BinDir is where scripts/kubebins puts the binaries: $AKSML_KUBEBINS, or
// ${XDG_CACHE_HOME:-~/.cache}/aksml/kubebins/vKubeVersion.
func BinDir() string {
	if d := os.Getenv("AKSML_KUBEBINS"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "aksml", "kubebins", "v"+KubeVersion)
}

// MissingBinaries returns the binaries of Binaries that dir lacks, as
// paths.
func MissingBinaries(dir string) []string {
	var missing []string
	for _, b := range Binaries {
		p := filepath.Join(dir, b)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	return missing
}

// Options configure New. The zero value starts a control plane with no
// nodes, whose pods (once nodes are added) all become ready.
type Options struct {
	// BinDir holds the binaries; empty means BinDir().
	BinDir string
	// Nodes are registered before New returns.
	Nodes []NodeSpec
	// Pods decides what each pod bound to a node does; nil means every
	// pod runs and becomes ready.
	Pods func(*corev1.Pod) PodOutcome
	// Dir, when set, holds the control plane's files instead of a
	// temporary directory, and Close keeps it: a later start on the same
	// Dir reuses its loopback address and etcd's data, so every object
	// (Deployments, Secrets, Services) comes back, as on a restarted
	// cluster. Certificates and the admin token are issued anew.
	Dir string
}

// ControlPlane is etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler running on one loopback address, plus the virtual-kubelet
// nodes registered with it.
type ControlPlane struct {
	// IP is the loopback address (127.x.y.z, random per start) every
	// component listens on, on its standard port.
	IP string
	// URL is the API server's address, https://IP:6443.
	URL string
	// Dir holds the PKI, the kubeconfig, etcd's data and the logs.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (context "kubetest").
	Kubeconfig string
	// Config and Client are admin clients of the API server.
	Config *rest.Config
	Client kubernetes.Interface
	// Started is how long New took, from the first process to every
	// component ready (nodes excluded).
	Started time.Duration

	pki   *pki
	pods  func(*corev1.Pod) PodOutcome
	mu    sync.Mutex
	procs []*process
	nodes []*Node
	port  int // next kubelet port

	bin    string
	closed bool
	keep   bool // Options.Dir: Close leaves the directory

	replicas sync.Map // pod IP → loopback address of its server
	podSeq   atomic.Int64
}

// nextPodIP numbers pods across the control plane's nodes.
func (cp *ControlPlane) nextPodIP() int { return int(cp.podSeq.Add(1)) }

// ReplicaAddr returns the loopback address (127.0.0.1:PORT) where the pod
// with IP podIP serves, for pods whose PodOutcome has Serve.
func (cp *ControlPlane) ReplicaAddr(podIP string) (string, bool) {
	a, ok := cp.replicas.Load(podIP)
	if !ok {
		return "", false
	}
	return a.(string), true
}

func (cp *ControlPlane) setReplica(podIP, addr string) {
	if addr == "" {
		cp.replicas.Delete(podIP)
		return
	}
	cp.replicas.Store(podIP, addr)
}

// LogTails returns the last n lines of each component's log (etcd,
// kube-apiserver, …), one block per component headed by its name: what a
// test prints when it fails.
func (cp *ControlPlane) LogTails(n int) string {
	var b strings.Builder
	for _, p := range cp.processes() {
		fmt.Fprintf(&b, "%s log tail:\n%s\n", p.name, p.tail(n))
	}
	return b.String()
}

// New starts a control plane (and opts.Nodes): it lives in a temporary
// directory until Close. It returns a
// FailedPrecondition error naming scripts/kubebins when the binaries are
// missing.
func New(ctx context.Context, opts *Options) (*ControlPlane, error) {
	if opts == nil {
		opts = &Options{}
	}
	bin := opts.BinDir
	if bin == "" {
		bin = BinDir()
	}
	if missing := MissingBinaries(bin); len(missing) > 0 {
		return nil, errcode.Errorf(errcode.FailedPrecondition, "the Kubernetes %s control plane is not built (missing %s): run scripts/kubebins, which builds etcd and Kubernetes from the Go module proxy (about 5 minutes once, then cached)", KubeVersion, strings.Join(missing, ", "))
	}
	dir, keep := opts.Dir, opts.Dir != ""
	if keep {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "aksml-kube-"); err != nil {
			return nil, err
		}
	}
	cp, err := start(ctx, bin, dir, opts)
	if cp != nil {
		cp.keep = keep
	}
	if err != nil {
		if cp != nil {
			_ = cp.Close()
		} else if !keep {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	for _, n := range opts.Nodes {
		if _, err := cp.AddNode(n); err != nil {
			_ = cp.Close()
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return cp, nil
}

func randomLoopback() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	// Avoid .0 and .255 in the last octet and 127.0.0.x, which other
	// programs on the machine use.
	if b[0] == 0 {
		b[0] = 1
	}
	if b[2] == 0 || b[2] == 255 {
		b[2] = 7
	}
	return fmt.Sprintf("127.%d.%d.%d", b[0], b[1], b[2])
}

// start runs the control plane in dir. On error the returned
// ControlPlane, when not nil, holds what started, for Close.
func start(ctx context.Context, bin, dir string, opts *Options) (*ControlPlane, error) {
	began := time.Now()
	cp := &ControlPlane{Dir: dir, IP: randomLoopback(), pods: opts.Pods, port: 11250, bin: bin}
	if opts.Dir != "" {
		// A kept directory keeps its address: etcd's data names it.
		ipFile := filepath.Join(dir, "ip")
		if b, err := os.ReadFile(ipFile); err == nil && net.ParseIP(strings.TrimSpace(string(b))) != nil {
			cp.IP = strings.TrimSpace(string(b))
		} else if err := os.WriteFile(ipFile, []byte(cp.IP+"\n"), 0o600); err != nil {
			return cp, err
		}
	}
	cp.URL = "https://" + net.JoinHostPort(cp.IP, "6443")

	p, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return cp, fmt.Errorf("pki: %w", err)
	}
	cp.pki = p
	ip := net.ParseIP(cp.IP)
	if _, _, err := p.issue("apiserver", "kube-apiserver", []net.IP{ip, net.ParseIP("10.0.0.1")}, []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}); err != nil {
		return cp, err
	}
	if _, _, err := p.issue("kubelet-client", "kube-apiserver-kubelet-client", nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}); err != nil {
		return cp, err
	}
	if err := p.serviceAccountKeys(); err != nil {
		return cp, err
	}
	token := randomHex(16)
	if err := os.WriteFile(p.path("tokens.csv"), []byte(token+",admin,admin-uid,system:masters\n"), 0o600); err != nil {
		return cp, err
	}
	cp.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthorityData: p.caPEM}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin"}
	kc.CurrentContext = "kubetest"
	if err := clientcmd.WriteToFile(*kc, cp.Kubeconfig); err != nil {
		return cp, err
	}
	cp.Config = &rest.Config{
		Host:            cp.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM},
		QPS:             200,
		Burst:           400,
	}
	if cp.Client, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return cp, err
	}

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	etcdURL := "http://" + net.JoinHostPort(cp.IP, "2379")
	peerURL := "http://" + net.JoinHostPort(cp.IP, "2380")
	etcd, err := cp.run(bin, "etcd",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return cp, err
	}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil); err != nil {
		return cp, err
	}
	api, err := cp.run(bin, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address="+cp.IP, "--advertise-address="+cp.IP, "--secure-port=6443",
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"), "--token-auth-file="+p.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
		"--kubelet-certificate-authority="+p.path("ca.crt"),
		"--kubelet-client-certificate="+p.path("kubelet-client.crt"), "--kubelet-client-key="+p.path("kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--enable-priority-and-fairness=false",
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"))
	if err != nil {
		return cp, err
	}
	tlsc := &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	tlsc.RootCAs.AppendCertsFromPEM(p.caPEM)
	if err := waitHTTP(ctx, api, cp.URL+"/readyz", &http.Client{Transport: &http.Transport{TLSClientConfig: tlsc}}, "Authorization", "Bearer "+token); err != nil {
		return cp, err
	}
	common := []string{"--kubeconfig=" + cp.Kubeconfig, "--authentication-kubeconfig=" + cp.Kubeconfig,
		"--authorization-kubeconfig=" + cp.Kubeconfig, "--bind-address=" + cp.IP, "--leader-elect=false"}
	kcm, err := cp.run(bin, "kube-controller-manager", append(common,
		"--secure-port=10257",
		"--service-account-private-key-file="+p.path("sa.key"), "--root-ca-file="+p.path("ca.crt"),
		"--service-cluster-ip-range=10.0.0.0/24", "--use-service-account-credentials=false",
		"--cert-dir="+filepath.Join(dir, "kcm-certs"))...)
	if err != nil {
		return cp, err
	}
	sched, err := cp.run(bin, "kube-scheduler", append(common, "--secure-port=10259",
		"--cert-dir="+filepath.Join(dir, "scheduler-certs"))...)
	if err != nil {
		return cp, err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed health endpoints on loopback
	if err := waitHTTP(ctx, kcm, "https://"+net.JoinHostPort(cp.IP, "10257")+"/healthz", insecure); err != nil {
		return cp, err
	}
	if err := waitHTTP(ctx, sched, "https://"+net.JoinHostPort(cp.IP, "10259")+"/healthz", insecure); err != nil {
		return cp, err
	}
	// The service-account controller is the last piece a namespace needs
	// before pods can be created in it.
	for {
		_, err := cp.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return cp, fmt.Errorf("the default service account never appeared: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cp.Started = time.Since(began)
	return cp, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// process is one control-plane binary running under the test.
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (cp *ControlPlane) run(bin, name string, args ...string) (*process, error) {
	logPath := filepath.Join(cp.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = cp.Dir
	// The kernel kills the process if the test binary dies first.
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	cp.mu.Lock()
	cp.procs = append(cp.procs, p)
	cp.mu.Unlock()
	return p, nil
}

// stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		childproc.KillGroup(p.cmd.Process)
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	f, err := os.Open(p.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200, the process exits, or ctx ends.
func waitHTTP(ctx context.Context, p *process, url string, c *http.Client, header ...string) error {
	if c == nil {
		c = http.DefaultClient
	}
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before it was ready; its log ends:\n%s", p.name, p.err, p.tail(30))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v; its log ends:\n%s", p.name, last, p.tail(30))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (cp *ControlPlane) processes() []*process {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]*process(nil), cp.procs...)
}

// Close removes the nodes, ends every process, newest first, and deletes
// the control plane's directory (unless Options.Dir named it). Closing twice is harmless.
func (cp *ControlPlane) Close() error {
	cp.mu.Lock()
	nodes, procs := cp.nodes, cp.procs
	cp.nodes, cp.procs = nil, nil
	closed := cp.closed
	cp.closed = true
	cp.mu.Unlock()
	for _, n := range nodes {
		n.stop()
	}
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	if closed || cp.keep {
		return nil
	}
	return os.RemoveAll(cp.Dir)
}

// Kubectl runs the kubectl built with the control plane against it and
// returns its combined output.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(cp.bin, "kubectl"), append([]string{"--kubeconfig=" + cp.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), errors.Join(err, errors.New(strings.TrimSpace(string(out))))
	}
	return string(out), nil
}

// nextPort returns a kubelet port for a new node (each node listens on the
// control plane's IP, on its own port).
func (cp *ControlPlane) nextPort() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.port++
	return cp.port
}
