package fe

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/kube"
)

// Run is the program cmd/aksml-fe runs (the in-cluster front-end):
// it parses args (ParseArgs), connects to the API server and serves
// (Serve) until ctx ends. Its JSON log goes to logOut; ready, when
// not nil, receives the listening address once the routing table is
// synced. --help prints the flags and returns nil.
func Run(ctx context.Context, args []string, logOut io.Writer, ready chan<- string) error {
	fa, err := ParseArgs(args, logOut)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var cfg *rest.Config
	if fa.Kubeconfig != "" || fa.Context != "" {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = fa.Kubeconfig
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: fa.Context}).ClientConfig()
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	fa.Serve.Logger = slog.New(slog.NewJSONHandler(logOut, nil)).With("apiserver", cfg.Host)
	fa.Serve.Ready = ready
	return Serve(ctx, client, &fa.Serve)
}

// Args are aksml-fe's parsed flags.
type Args struct {
	// Kubeconfig and Context reach the API server from outside the
	// cluster; both empty means the in-cluster config.
	Kubeconfig, Context string
	// Serve holds the rest: listen address, namespaces, replica mapping.
	Serve ServeOptions
}

// ParseArgs parses aksml-fe's flags; usage goes to out. Errors are
// InvalidArgument, or flag.ErrHelp for --help.
//
//	--listen ADDR                   address to serve on (default 0.0.0.0:9001)
//	--listen-tls ADDR               address to serve HTTPS on once the Secret azuremlfessl
//	                                gives a certificate (default 0.0.0.0:9443)
//	--https-port N                  port clients reach HTTPS on (the load balancer's), where
//	                                plain HTTP is redirected while TLS is on (default 443)
//	--kubeconfig PATH, --context C  reach the API server from outside the cluster (default: in-cluster config)
//	--namespace NS                  watch only this namespace (default: all)
//	--token-namespace NS            namespace of the token key Secret and of the
//	                                certificate Secret azuremlfessl (default azureml)
//	--replica-address-prefix FROM=TO
//	                                dial pod addresses that start with FROM with TO
//	                                instead (IPv4 prefixes ending in a dot, such as
//	                                10.244.=127.77.): a front-end outside the pod
//	                                network reaching pods through a mapped range
func ParseArgs(args []string, out io.Writer) (*Args, error) {
	fs := flag.NewFlagSet("aksml-fe", flag.ContinueOnError)
	fs.SetOutput(out)
	fa := &Args{}
	fs.StringVar(&fa.Serve.Listen, "listen", "0.0.0.0:9001", "address to serve scoring requests on")
	fs.StringVar(&fa.Serve.ListenTLS, "listen-tls", "0.0.0.0:9443", "address to serve HTTPS on once the Secret "+kube.FrontEndTLSSecret+" gives a certificate")
	fs.IntVar(&fa.Serve.HTTPSPort, "https-port", 443, "port clients reach HTTPS on (the load balancer's), where plain HTTP is redirected while TLS is on")
	fs.StringVar(&fa.Kubeconfig, "kubeconfig", "", "kubeconfig path (empty: in-cluster config)")
	fs.StringVar(&fa.Context, "context", "", "kubeconfig context (empty: current)")
	fs.StringVar(&fa.Serve.Namespace, "namespace", "", "watch only this namespace (empty: all)")
	fs.StringVar(&fa.Serve.TokenNamespace, "token-namespace", kube.DefaultNamespace, "namespace of the token key Secret "+kube.TokenSecret+" and of the certificate Secret "+kube.FrontEndTLSSecret)
	mapping := fs.String("replica-address-prefix", "", "FROM=TO: dial pod addresses starting with FROM with TO instead (IPv4 prefixes ending in a dot)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errcode.Wrap(errcode.InvalidArgument, err)
	}
	if fs.NArg() > 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "aksml-fe: unexpected arguments %q", fs.Args())
	}
	if p := fa.Serve.HTTPSPort; p < 1 || p > 65535 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "aksml-fe: https-port %d must be a TCP port, 1 to 65535", p)
	}
	var err error
	if fa.Serve.ReplicaURL, err = ParseReplicaAddressPrefix(*mapping); err != nil {
		return nil, err
	}
	return fa, nil
}

// ServeOptions configure Serve; nil or zero fields take the
// defaults of aksml-fe's flags.
type ServeOptions struct {
	// Listen is the address to serve on; default 0.0.0.0:9001.
	Listen string
	// ListenTLS is the address to serve HTTPS on; default 0.0.0.0:9443.
	// It listens from the start; handshakes fail while the Secret
	// kube.FrontEndTLSSecret gives no certificate.
	ListenTLS string
	// HTTPSPort is the port clients reach ListenTLS on (a load
	// balancer's: 443 on AKS), to which plain HTTP is redirected while
	// TLS is on; zero means ListenTLS's own port.
	HTTPSPort int
	// Namespace limits the watches to one namespace; empty means all.
	Namespace string
	// TokenNamespace holds the token key Secret and the certificate
	// Secret kube.FrontEndTLSSecret; default kube.DefaultNamespace.
	TokenNamespace string
	// ReplicaURL maps pod addresses to the URLs dialled (Options).
	ReplicaURL func(address string, port int32) string
	// Clock issues and judges tokens; default the real clock.
	Clock clock.PassiveClock
	// Logger receives the front-end's events; default discard.
	Logger *slog.Logger
	// Ready, when not nil, receives the listening address once the routing
	// table is synced; ReadyTLS, when not nil, the HTTPS listening address
	// at the same moment.
	Ready, ReadyTLS chan<- string
}

// Serve runs the front-end on client until ctx ends: the router of
// package frontend with the cluster's token key, programmed by a FrontEnd
// from the cluster's watches, serving HTTP on Listen and HTTPS on
// ListenTLS with the certificate of the Secret kube.FrontEndTLSSecret. It
// binds both listeners at once but serves them only once the first full
// routing table is installed: until then callers' connections wait, rather
// than be told that services the cluster has do not exist. It returns nil
// when ctx ends, or the error that stopped it.
func Serve(ctx context.Context, client kubernetes.Interface, opts *ServeOptions) error {
	var o ServeOptions
	if opts != nil {
		o = *opts
	}
	if o.Listen == "" {
		o.Listen = "0.0.0.0:9001"
	}
	if o.ListenTLS == "" {
		o.ListenTLS = "0.0.0.0:9443"
	}
	if o.TokenNamespace == "" {
		o.TokenNamespace = kube.DefaultNamespace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	key, err := kube.TokenKey(ctx, client, o.TokenNamespace)
	if err != nil {
		return err
	}
	rt := frontend.New(&frontend.Options{Logger: o.Logger, Tokens: frontend.NewTokenIssuer(key, &frontend.TokenOptions{Clock: o.Clock})})
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	tln, err := net.Listen("tcp", o.ListenTLS)
	if err != nil {
		ln.Close()
		return err
	}
	if o.HTTPSPort <= 0 {
		o.HTTPSPort = tln.Addr().(*net.TCPAddr).Port
	}
	fe := New(client, rt, &Options{Namespace: o.Namespace, Logger: o.Logger, ReplicaURL: o.ReplicaURL,
		TLSNamespace: o.TokenNamespace, HTTPSPort: o.HTTPSPort})
	errc := make(chan error, 3)
	// The listeners are bound from the start (the pod's TCP probes
	// pass, callers' connections wait in the backlog) but served only
	// once the first full routing table is installed: before it, every
	// service would be answered 404, as if it did not exist.
	serve := func(ln net.Listener, engine func(net.Listener) error) {
		select {
		case <-fe.Synced():
			if ctx.Err() == nil {
				errc <- engine(ln)
				return
			}
		case <-ctx.Done():
		}
		ln.Close()
		errc <- nil
	}
	go serve(ln, rt.Serve)
	go serve(tln, rt.ServeTLS)
	go func() { errc <- fe.Run(ctx) }()
	o.Logger.Info("aksml-fe: serving", "listen", ln.Addr().String(), "listenTLS", tln.Addr().String(), "httpsPort", o.HTTPSPort)
	if o.Ready != nil || o.ReadyTLS != nil {
		go func() {
			select {
			case <-fe.Synced():
			case <-ctx.Done():
				return
			}
			if o.Ready != nil {
				o.Ready <- ln.Addr().String()
			}
			if o.ReadyTLS != nil {
				o.ReadyTLS <- tln.Addr().String()
			}
		}()
	}
	running := 3
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
		stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := rt.Shutdown(sctx); err == nil {
		err = serr
	}
	stop()
	for ; running > 0; running-- {
		<-errc // the engines end with Shutdown, the watches with ctx
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// ParseReplicaAddressPrefix parses the --replica-address-prefix value
// FROM=TO (IPv4 prefixes of one to three octets, each ending in a dot) into
// a Options.ReplicaURL that dials pod addresses starting with FROM
// at TO plus the rest of the address. Empty means nil: dial pods as they
// are.
func ParseReplicaAddressPrefix(s string) (func(address string, port int32) string, error) {
	if s == "" {
		return nil, nil
	}
	from, to, ok := strings.Cut(s, "=")
	if !ok {
		return nil, errcode.Errorf(errcode.InvalidArgument, "replica-address-prefix %q must be FROM=TO, such as 10.244.=127.77.", s)
	}
	for _, p := range []struct{ name, v string }{{"FROM", from}, {"TO", to}} {
		if err := checkPrefix(p.v); err != nil {
			return nil, errcode.Errorf(errcode.InvalidArgument, "replica-address-prefix %q: %s %q %v", s, p.name, p.v, err)
		}
	}
	if strings.Count(from, ".") != strings.Count(to, ".") {
		return nil, errcode.Errorf(errcode.InvalidArgument, "replica-address-prefix %q: FROM and TO must have the same number of octets", s)
	}
	return func(address string, port int32) string {
		if rest, ok := strings.CutPrefix(address, from); ok {
			address = to + rest
		}
		return "http://" + net.JoinHostPort(address, strconv.Itoa(int(port)))
	}, nil
}

// checkPrefix: one to three decimal octets, each followed by a dot.
func checkPrefix(p string) error {
	if !strings.HasSuffix(p, ".") {
		return errors.New("must end in a dot")
	}
	octets := strings.Split(strings.TrimSuffix(p, "."), ".")
	if len(octets) > 3 {
		return errors.New("has more than three octets")
	}
	for _, o := range octets {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 || n > 255 || o != strconv.Itoa(n) {
			return errors.New("octets must be decimal numbers 0-255")
		}
	}
	return nil
}
