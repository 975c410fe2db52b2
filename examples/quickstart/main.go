// Command quickstart is aksml's main job in one program: it registers a
// small real model (an iris classifier trained offline on the data set
// scikit-learn ships), creates a dev-test AKS target on the in-process
// simulator, deploys the model with key auth behind a standard-library-only
// score.py, scores a few flowers, then regenerates the primary key and shows
// that the old key is rejected.
//
//	go run ./examples/quickstart
//
// It needs Debian's /usr/bin/python3 or any python3 on PATH (3.8 or later; no
// packages). It links only the simulator, not the Kubernetes or Docker
// clients, so it builds in seconds; examples/localcluster runs the same job
// on a local AKS (a real Kubernetes control plane). The job itself, written
// once for both, is examples/internal/iris; the model, its training script
// and score.py are in this directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aksml/aksml/examples/internal/iris"
	"github.com/aksml/aksml/simulator"
)

func main() {
	workdir := flag.String("workspace", "", "workspace directory (default: a fresh temporary one)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sim := simulator.New(nil)
	err := iris.Run(ctx, os.Stdout, *workdir, sim)
	sim.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}
