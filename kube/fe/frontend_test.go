package fe_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/kube/fe"
)

// A pod being deleted leaves the route when the API server records its
// deletion, though its EndpointSlice still says ready: on a busy control
// plane the EndpointSlice controller updates it late, and the replica must
// not get requests after it has drained and stopped.
func TestTerminatingPodLeavesRouteBeforeEndpointSlice(t *testing.T) {
	t.Parallel()
	const ns, svc, ver = "aksml", "iris", "v1"
	labels := map[string]string{kube.LabelManagedBy: kube.ManagedBy, kube.LabelService: svc, kube.LabelVersion: ver}
	yes := true
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}}
	}
	ep := func(name, addr string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: name}}
	}
	client := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: kube.SecretName(svc), Namespace: ns, Labels: labels,
			Annotations: map[string]string{kube.AnnotationVersions: `["v1"]`}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: svc + "-" + ver, Namespace: ns, Labels: labels,
			Annotations: map[string]string{kube.AnnotationDefault: "true"}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc + "-" + ver + "-abc", Namespace: ns, Labels: labels},
			Endpoints: []discoveryv1.Endpoint{ep("a", "127.0.0.1"), ep("b", "127.0.0.2")}},
		pod("a"), pod("b"),
	)
	rt := frontend.New(nil)
	defer rt.Shutdown(context.Background())
	f := fe.New(client, rt, &fe.Options{Namespace: ns})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-f.Synced()

	ready := func() int {
		l, err := rt.Load(svc)
		if err != nil || len(l) != 1 {
			return -1
		}
		return l[0].ReadyReplicas
	}
	waitReady(t, ready, 2)

	// kubectl delete pod b: the API server sets its deletion timestamp;
	// the EndpointSlice is not touched.
	b := pod("b")
	now := metav1.Now()
	b.DeletionTimestamp = &now
	if _, err := client.CoreV1().Pods(ns).Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ready, 1)
	l, _ := rt.Load(svc)
	if l[0].Replicas != 2 {
		t.Errorf("replicas = %d, want 2 (the terminating one is kept, not ready)", l[0].Replicas)
	}
}

// waitReady waits until ready() reports want; the front-end applies watch
// events asynchronously.
func waitReady(t *testing.T, ready func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := ready(); got != want; got = ready() {
		if time.Now().After(deadline) {
			t.Fatalf("ready replicas = %d, want %d", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}
