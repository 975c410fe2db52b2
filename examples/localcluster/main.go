// Command localcluster is examples/quickstart on a local AKS (package
// kube/local) instead of the in-process simulator: a real Kubernetes control
// plane whose virtual nodes run the pods on this machine, no Docker needed
// (the control plane's binaries come from scripts/kubebins), so the
// deployment goes through the Kubernetes manifests AKS would get. It
// registers the quickstart's iris model, deploys it with key auth behind the
// quickstart's score.py, scores a few flowers, then regenerates the primary
// key and shows that the old key is rejected.
//
//	go run ./examples/localcluster
//
// It links client-go and the local cluster's pieces, so its first build
// takes minutes where the quickstart's takes seconds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aksml/aksml/examples/internal/iris"
	"github.com/aksml/aksml/kube/local"
)

func main() {
	workdir := flag.String("workspace", "", "workspace directory (default: a fresh temporary one)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := iris.Run(ctx, os.Stdout, *workdir, local.NewProvider(nil))
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}
