package kube_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/webservice"
)

// countingTransport counts the requests sent to the API server.
type countingTransport struct {
	n    *atomic.Int64
	next http.RoundTripper
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// countingProvider attaches clusters through a kube.Provider whose client
// counts every API request.
type countingProvider struct {
	*kube.Provider
	n *atomic.Int64
}

func (p countingProvider) Attach(ctx context.Context, name string, ref driver.ClusterRef) (driver.Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = ref.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: ref.Context}).ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{p.n, rt} }
	return p.AttachConfig(ctx, name, cfg)
}

// testWaitRequests counts the API requests WaitForDeployment makes while
// a service stays Transitioning (its pods never turn ready): the wait is
// woken by watches and falls back to a read every PollInterval, so it
// costs a few requests a second, where reading the state every few
// milliseconds cost hundreds.
func (m *mixed) testWaitRequests(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	ws, err := aml.Open(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var n atomic.Int64
	p := countingProvider{kube.New(&kube.Options{Namespace: "waits", ScoringBaseURL: m.fe}), &n}
	target, err := compute.Attach(ctx, ws, "counted", compute.AttachConfig{Kubeconfig: m.cp.Kubeconfig, Context: "kubetest"}, &compute.CreateOptions{Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Detach(context.WithoutCancel(ctx))
	rt := webservice.Runtime{Template: driver.ReplicaTemplate{Image: imageUnready, Digest: "sha256:" + strings.Repeat("3", 64)}}
	svc, err := webservice.Deploy(ctx, target, "waited", webservice.DeployConfig{NumReplicas: 1}, rt, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Delete(context.WithoutCancel(ctx))

	const wait = 8 * time.Second
	const settle = 3 * time.Second // watches set up, pods scheduled and started
	start := n.Load()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.WaitForDeployment(wctx) }()
	time.Sleep(settle) // measuring a rate over time: the wait must run meanwhile
	mid := n.Load()
	err = <-done
	end := n.Load()
	if !errors.Is(err, errcode.DeadlineExceeded) {
		t.Fatalf("WaitForDeployment of a service whose pods never turn ready: %v, want DeadlineExceeded", err)
	}
	total := float64(end-start) / wait.Seconds()
	steady := float64(end-mid) / (wait - settle).Seconds()
	t.Logf("WaitForDeployment: %d API requests in %v (%.1f/s), %d in the last %v (%.1f/s); default poll interval %v",
		end-start, wait, total, end-mid, wait-settle, steady, compute.DefaultPollInterval)
	if steady > 4 {
		t.Errorf("a waiting WaitForDeployment makes %.1f API requests a second once settled, want at most 4", steady)
	}
	if total > 8 {
		t.Errorf("WaitForDeployment made %.1f API requests a second on average, want at most 8", total)
	}
}

// providerHarness runs the Provider cases on the kube provider: it
// attaches the control plane of m and provisions nothing.
type providerHarness struct{ m *mixed }

func (h providerHarness) NewProvider(ctx context.Context, t *testing.T) driver.Provider {
	return kube.New(&kube.Options{ScoringBaseURL: h.m.fe})
}

func (providerHarness) ProvisionShape() (driver.ClusterShape, bool) {
	return driver.ClusterShape{}, false
}

func (h providerHarness) Existing(ctx context.Context, t *testing.T) (driver.ClusterRef, bool) {
	return driver.ClusterRef{Kubeconfig: h.m.cp.Kubeconfig, Context: "kubetest"}, true
}

func (m *mixed) testProviderContract(t *testing.T) {
	drivertest.RunProviderTests(t, providerHarness{m})
}
