package kube

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

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
)

// RunFrontEnd is the program cmd/aksml-fe runs (the in-cluster front-end):
// it parses args, builds the router from the cluster's watches and serves
// until ctx ends. Its JSON log goes to logOut; ready, when not nil,
// receives the listening address once the routing table is synced.
//
// Flags:
//
//	--listen ADDR                   address to serve on (default 0.0.0.0:9001)
//	--kubeconfig PATH, --context C  reach the API server from outside the cluster (default: in-cluster config)
//	--namespace NS                  watch only this namespace (default: all)
//	--token-namespace NS            namespace of the token key Secret (default azureml)
//	--replica-address-prefix FROM=TO
//	                                dial pod addresses that start with FROM with TO
//	                                instead (IPv4 prefixes ending in a dot, such as
//	                                10.244.=127.77.): a front-end outside the pod
//	                                network reaching pods through a mapped range
func RunFrontEnd(ctx context.Context, args []string, logOut io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("aksml-fe", flag.ContinueOnError)
	fs.SetOutput(logOut)
	listen := fs.String("listen", "0.0.0.0:9001", "address to serve scoring requests on")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig path (empty: in-cluster config)")
	kctx := fs.String("context", "", "kubeconfig context (empty: current)")
	namespace := fs.String("namespace", "", "watch only this namespace (empty: all)")
	tokenNS := fs.String("token-namespace", DefaultNamespace, "namespace of the token key Secret "+TokenSecret)
	mapping := fs.String("replica-address-prefix", "", "FROM=TO: dial pod addresses starting with FROM with TO instead (IPv4 prefixes ending in a dot)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errcode.Wrap(errcode.InvalidArgument, err)
	}
	if fs.NArg() > 0 {
		return errcode.Errorf(errcode.InvalidArgument, "aksml-fe: unexpected arguments %q", fs.Args())
	}
	replicaURL, err := ParseReplicaAddressPrefix(*mapping)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logOut, nil))
	var cfg *rest.Config
	if *kubeconfig != "" || *kctx != "" {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = *kubeconfig
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kctx}).ClientConfig()
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
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	key, err := TokenKey(ctx, client, *tokenNS)
	if err != nil {
		return err
	}
	rt := frontend.New(&frontend.Options{Logger: log, Tokens: frontend.NewTokenIssuer(key, nil)})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fe := NewFrontEnd(client, rt, &FrontEndOptions{Namespace: *namespace, Logger: log, ReplicaURL: replicaURL})
	errc := make(chan error, 2)
	go func() { errc <- rt.Serve(ln) }()
	go func() { errc <- fe.Run(ctx) }()
	log.Info("aksml-fe: serving", "listen", ln.Addr().String(), "apiserver", cfg.Host)
	if ready != nil {
		go func() {
			select {
			case <-fe.Synced():
				ready <- ln.Addr().String()
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
		stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := rt.Shutdown(sctx); err == nil {
		err = serr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// ParseReplicaAddressPrefix parses the --replica-address-prefix value
// FROM=TO (IPv4 prefixes of one to three octets, each ending in a dot) into
// a FrontEndOptions.ReplicaURL that dials pod addresses starting with FROM
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
