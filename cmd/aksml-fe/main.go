// Command aksml-fe is aksml's in-cluster front-end, the counterpart of
// azureml-fe: one router (package frontend) for every service on the
// cluster, its routing table built from watches of the services' Secrets,
// Deployments and EndpointSlices (kube.FrontEnd), tokens verified with the
// cluster's token key (the Secret aksml-token-signing).
//
//	aksml-fe --listen 0.0.0.0:9001                     # in a pod: in-cluster config
//	aksml-fe --kubeconfig ~/.kube/config --listen 127.0.0.1:9001
//
// It stops gracefully on SIGTERM or SIGINT.
//
// Its image (kube.DefaultFrontEndImage) is built FROM scratch from the
// static binary: build-image.sh in this directory, with the Dockerfile
// beside it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/kube"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "aksml-fe:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, when not nil, receives the listening
// address once the routing table is synced.
func run(ctx context.Context, args []string, ready chan<- string) error {
	fs := flag.NewFlagSet("aksml-fe", flag.ContinueOnError)
	listen := fs.String("listen", "0.0.0.0:9001", "address to serve scoring requests on")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig path (empty: in-cluster config)")
	kctx := fs.String("context", "", "kubeconfig context (empty: current)")
	namespace := fs.String("namespace", "", "watch only this namespace (empty: all)")
	tokenNS := fs.String("token-namespace", kube.DefaultNamespace, "namespace of the token key Secret "+kube.TokenSecret)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var cfg *rest.Config
	var err error
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
	key, err := kube.TokenKey(ctx, client, *tokenNS)
	if err != nil {
		return err
	}
	rt := frontend.New(&frontend.Options{Logger: log, Tokens: frontend.NewTokenIssuer(key, nil)})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fe := kube.NewFrontEnd(client, rt, &kube.FrontEndOptions{Namespace: *namespace, Logger: log})
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
