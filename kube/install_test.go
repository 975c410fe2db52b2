package kube_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/kube/kubetest"
)

// TestIntegrationInstallInternalLoadBalancer attaches with an internal
// load balancer: the front-end Service the API server stores carries the
// Azure annotations; installing again changes nothing; installing with a
// public load balancer drops them (one field manager owns them); a subnet
// without an internal load balancer is refused.
func TestIntegrationInstallInternalLoadBalancer(t *testing.T) {
	cp := kubetest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ns = "fe-internal"
	const image = "example.com/aksml-fe@sha256:7777777777777777777777777777777777777777777777777777777777777777"
	p := kube.New(&kube.Options{InstallFrontEnd: true, FrontEndImage: image, FrontEndNamespace: ns,
		FrontEndInternalLoadBalancer: true, FrontEndLoadBalancerSubnet: "ilb-subnet"})
	dc, err := p.Attach(ctx, "internal", driver.ClusterRef{Kubeconfig: cp.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	c := dc.(*kube.Cluster)
	get := func() *corev1.Service {
		t.Helper()
		svc, err := cp.Client.CoreV1().Services(ns).Get(ctx, kube.FrontEndName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	svc := get()
	want := map[string]string{kube.AnnotationInternalLoadBalancer: "true", kube.AnnotationInternalSubnet: "ilb-subnet"}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !maps.Equal(svc.Annotations, want) {
		t.Errorf("front-end service: type %s annotations %v, want LoadBalancer with %v", svc.Spec.Type, svc.Annotations, want)
	}

	if err := c.InstallFrontEnd(ctx, image); err != nil {
		t.Fatal(err)
	}
	if again := get(); again.ResourceVersion != svc.ResourceVersion {
		t.Errorf("installing the same front-end again changed its Service (resource version %s → %s)", svc.ResourceVersion, again.ResourceVersion)
	}

	if err := c.InstallFrontEndWith(ctx, kube.InstallOptions{Image: image, InternalLoadBalancer: true}); err != nil {
		t.Fatal(err)
	}
	if got := get().Annotations; !maps.Equal(got, map[string]string{kube.AnnotationInternalLoadBalancer: "true"}) {
		t.Errorf("internal load balancer without a subnet: annotations %v, want only %s", got, kube.AnnotationInternalLoadBalancer)
	}
	if err := c.InstallFrontEndWith(ctx, kube.InstallOptions{Image: image}); err != nil {
		t.Fatal(err)
	}
	if got := get().Annotations; len(got) != 0 {
		t.Errorf("public load balancer: annotations %v, want none", got)
	}
	err = c.InstallFrontEndWith(ctx, kube.InstallOptions{Image: image, LoadBalancerSubnet: "ilb-subnet"})
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("a subnet with a public load balancer: %v, want InvalidArgument", err)
	}
	if err := c.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.CoreV1().Services(ns).Get(ctx, kube.FrontEndName, metav1.GetOptions{}); err == nil {
		t.Error("front-end service left after detach")
	}
}
