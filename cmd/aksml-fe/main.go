// Command aksml-fe is aksml's in-cluster front-end, the counterpart of
// azureml-fe: one router (package frontend) for every service on the
// cluster, its routing table built from watches of the services' Secrets,
// Deployments and EndpointSlices (fe.FrontEnd), tokens verified with the
// cluster's token key (the Secret aksml-token-signing). It serves HTTPS on
// --listen-tls with the certificate of the Secret azuremlfessl once there
// is one, and then redirects plain HTTP to https://CNAME[:--https-port].
//
//	aksml-fe --listen 0.0.0.0:9001 --listen-tls 0.0.0.0:9443   # in a pod: in-cluster config
//	aksml-fe --kubeconfig ~/.kube/config --listen 127.0.0.1:9001
//
// Flags as fe.Run documents them.
// It stops gracefully on SIGTERM or SIGINT.
//
// Its image (kube.DefaultFrontEndImage in package kube) is built FROM scratch from the
// static binary: build-image.sh in this directory, with the Dockerfile
// beside it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aksml/aksml/kube/fe"
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
	return fe.Run(ctx, args, os.Stderr, ready)
}
