// Command userapp is the small program a user writes first: it deploys a Go
// handler on the in-process simulator with aml, compute and webservice, and
// scores it once. bench/coldbuild builds it with an empty build cache to
// measure what importing aksml costs.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

type double struct{}

func (double) Init(context.Context, string) error { return nil }

func (double) Run(_ context.Context, input []byte) ([]byte, error) {
	var in struct{ Data []float64 }
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, err
	}
	for i := range in.Data {
		in.Data[i] *= 2
	}
	return json.Marshal(in.Data)
}

var _ scoring.Handler = double{}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "userapp:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "userapp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ws, err := aml.Open(ctx, dir, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	sim := simulator.New(nil)
	defer sim.Close()
	target, err := compute.Create(ctx, ws, "aks-dev", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		return err
	}
	if err := target.Wait(ctx); err != nil {
		return err
	}
	svc, err := aml.Deploy(ctx, ws, "double", nil, &aml.InferenceConfig{Handler: func() scoring.Handler { return double{} }}, webservice.DeployConfig{}, target, nil)
	if err != nil {
		return err
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		return err
	}
	out, err := svc.Run(ctx, `{"data": [1, 2, 3]}`)
	if err != nil {
		return err
	}
	fmt.Println(out)
	return svc.Delete(ctx)
}
