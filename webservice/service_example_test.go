package webservice_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// doubler is a Go-native model: it doubles each number it is sent.
type doubler struct{}

func (doubler) Init(ctx context.Context, modelDir string) error { return nil }
func (doubler) Run(ctx context.Context, in []byte) ([]byte, error) {
	var xs []float64
	if err := json.Unmarshal(in, &xs); err != nil {
		return nil, err
	}
	for i := range xs {
		xs[i] *= 2
	}
	return json.Marshal(xs)
}

// Deploy a Go model with key auth, score it, and rotate its primary key.
func ExampleService_Run() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "aksml-example-")
	defer os.RemoveAll(dir)
	ws, _ := aml.Open(ctx, dir, nil)
	defer ws.Close()
	sim := simulator.New(nil)
	defer sim.Close()
	target, _ := compute.Create(ctx, ws, "aks-dev", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})

	ic := &aml.InferenceConfig{Handler: func() scoring.Handler { return doubler{} }}
	svc, err := aml.Deploy(ctx, ws, "doubler", nil, ic, webservice.DeployConfig{NumReplicas: 1}, target, nil)
	if err != nil {
		panic(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		panic(err)
	}
	out, err := svc.Run(ctx, []float64{1, 2.5})
	fmt.Println(string(out), err)

	old, _, _ := svc.Keys(ctx)
	_ = svc.RegenKey(ctx, webservice.Primary, "")
	_, err = webservice.Score(ctx, nil, svc.ScoringURI(), "[1]", func(context.Context, bool) (string, error) { return old, nil })
	var re *webservice.ResponseError
	fmt.Println(errors.Is(err, errcode.Unauthenticated), errors.As(err, &re) && re.StatusCode == 401)
	// Output:
	// [2,5] <nil>
	// true true
}
