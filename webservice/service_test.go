package webservice_test

import (
	"context"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// tagged answers its tag to every request.
type tagged string

func (tagged) Init(context.Context, string) error            { return nil }
func (t tagged) Run(context.Context, []byte) ([]byte, error) { return []byte(`"` + t + `"`), nil }

// TestTwoWorkspacesSideBySide deploys a Go-handler service of the same name
// on targets of the same name in two workspaces of one process, finds each
// again through a fresh target handle and updates it without passing its
// handler: each workspace keeps the handler its own service runs, so each
// service still answers with its own model after the update.
func TestTwoWorkspacesSideBySide(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type side struct {
		ws  *aml.Workspace
		sim *simulator.Simulator
		tag string
	}
	sides := []*side{{tag: "first"}, {tag: "second"}}
	for _, s := range sides {
		ws, err := aml.Open(ctx, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		s.ws, s.sim = ws, simulator.New(nil)
		t.Cleanup(func() { s.sim.Close() })
		target, err := compute.Create(ctx, ws, "aks", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: s.sim})
		if err != nil {
			t.Fatal(err)
		}
		tag := s.tag
		ic := &aml.InferenceConfig{Handler: func() scoring.Handler { return tagged(tag) }}
		svc, err := aml.Deploy(ctx, ws, "svc", nil, ic, webservice.DeployConfig{NumReplicas: 1}, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.WaitForDeployment(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sides {
		target, err := compute.Get(ctx, s.ws, "aks", s.sim)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := webservice.Get(ctx, target, "svc")
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Update(ctx, webservice.UpdateOptions{Config: &webservice.DeployConfig{NumReplicas: 2}}); err != nil {
			t.Fatalf("%s workspace: update without a runtime: %v", s.tag, err)
		}
		if err := svc.WaitForDeployment(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sides {
		target, err := compute.Get(ctx, s.ws, "aks", s.sim)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := webservice.Get(ctx, target, "svc")
		if err != nil {
			t.Fatal(err)
		}
		for range 4 { // both replicas of the updated service
			out, err := svc.Run(ctx, "{}")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(out), `"`+s.tag+`"`; got != want {
				t.Fatalf("%s workspace's service answered %s, want %s: it runs the other workspace's handler", s.tag, got, want)
			}
		}
	}
}
