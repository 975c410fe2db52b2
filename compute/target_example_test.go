package compute_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/simulator"
)

// Create an AKS compute target on the in-process simulator, as
// AksCompute.create and wait_for_completion(show_output=True) do.
func ExampleCreate() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "aksml-example-")
	defer os.RemoveAll(dir)
	ws, err := aml.Open(ctx, dir, nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	sim := simulator.New(nil)
	defer sim.Close()

	cfg := compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, VMSize: "Standard_D2_v2"}
	target, err := compute.Create(ctx, ws, "aks-dev", cfg, &compute.CreateOptions{Provider: sim, Progress: os.Stdout})
	if err != nil {
		panic(err)
	}
	if err := target.Wait(ctx); err != nil {
		panic(err)
	}
	recs, _ := compute.List(ctx, ws)
	fmt.Println(recs[0].Name, recs[0].ComputeType, recs[0].Provisioning.AgentCount, recs[0].Provisioning.VMSize)

	_, err = compute.Create(ctx, ws, "aks-dev", cfg, &compute.CreateOptions{Provider: sim})
	fmt.Println(err)
	// Output:
	// Provisioning operation finished, operation "Succeeded"
	// aks-dev AKS 1 Standard_D2_v2
	// compute target "aks-dev" already exists in the workspace (create is not idempotent)
}

// Serve a target's scoring URIs over HTTPS with a certificate for a leaf
// domain label (enable_ssl(leaf_domain_label=...)): the workspace's CA
// issues it, the library's clients trust it, and Update renews it.
func ExampleSSLConfig_leafDomainLabel() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "aksml-example-")
	defer os.RemoveAll(dir)
	ws, err := aml.Open(ctx, dir, nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	sim := simulator.New(nil)
	defer sim.Close()

	cfg := compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, Location: "westeurope",
		SSL: compute.SSLConfig{LeafDomainLabel: "contoso"}}
	target, err := compute.Create(ctx, ws, "aks-tls", cfg, &compute.CreateOptions{Provider: sim})
	if err != nil {
		panic(err)
	}
	if err := target.Wait(ctx); err != nil {
		panic(err)
	}
	st, _ := target.Cluster().Status(ctx)
	fmt.Println(strings.HasPrefix(st.ScoringBaseURL, "https://contoso"), strings.Contains(st.ScoringBaseURL, ".westeurope.cloudapp.azure.com:"))
	rec, _ := compute.Lookup(ctx, ws, "aks-tls")
	fmt.Println(rec.Provisioning.SSL.Status(), len(rec.ClusterFQDN))

	// A new certificate for the same name: new connections get it at once.
	if err := target.Update(ctx, compute.UpdateConfig{SSL: &compute.SSLConfig{LeafDomainLabel: "contoso"}}); err != nil {
		panic(err)
	}
	again, _ := target.Cluster().Status(ctx)
	fmt.Println(again.TLS.CName == st.TLS.CName, again.TLS.SHA256 != st.TLS.SHA256)
	// Output:
	// true true
	// Auto 43
	// true true
}
