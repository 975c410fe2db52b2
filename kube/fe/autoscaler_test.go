package fe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/aksml/aksml/autoscale"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/kube/fe"
)

// A step in load between refresh periods is met at the next sample, not at
// the next period: with a 60 s refresh period, the front-end writes the
// count the load calls for to the Deployment's scale subresource after one
// 100 ms sample, and does not write it again while its watch cache still
// shows the old count; a higher load later raises it again.
func TestEagerScaleUpBetweenPeriods(t *testing.T) {
	t.Parallel()
	const ns, svc, ver = "aksml", "elastic", "v1"
	release := make(chan struct{})
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte(`{}`))
	}))
	defer replica.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()

	labels := map[string]string{kube.LabelManagedBy: kube.ManagedBy, kube.LabelService: svc, kube.LabelVersion: ver}
	yes := true
	one := int32(1)
	client := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: kube.SecretName(svc), Namespace: ns, Labels: labels,
			Annotations: map[string]string{kube.AnnotationVersions: `["v1"]`}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: svc + "-" + ver, Namespace: ns, Labels: labels,
			Annotations: map[string]string{
				kube.AnnotationDefault:       "true",
				kube.AnnotationMaxConcurrent: "1",
				kube.AnnotationMaxQueueWait:  "60000",
				kube.AnnotationAutoscale:     `{"minReplicas":1,"maxReplicas":20,"targetUtilization":70,"refreshSeconds":60}`,
			}},
			Spec: appsv1.DeploymentSpec{Replicas: &one}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc + "-" + ver + "-abc", Namespace: ns, Labels: labels},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "a"}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: ns, Labels: labels}},
	)
	// The scale subresource: reads give the Deployment's count; writes are
	// recorded (and, as on a cluster whose controller is slow, not yet
	// reflected in the Deployment the front-end watches).
	var mu sync.Mutex
	var writes []int32
	wrote := make(chan struct{}, 16)
	client.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: svc + "-" + ver, Namespace: ns},
			Spec: autoscalingv1.ScaleSpec{Replicas: 1}}, nil
	})
	client.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		s := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		mu.Lock()
		writes = append(writes, s.Spec.Replicas)
		mu.Unlock()
		wrote <- struct{}{}
		return true, s, nil
	})

	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	rt := frontend.New(nil)
	defer rt.Shutdown(context.Background())
	f := fe.New(client, rt, &fe.Options{Namespace: ns, Clock: clk,
		ReplicaURL: func(string, int32) string { return replica.URL }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-f.Synced()
	waitReady(t, func() int {
		l, err := rt.Load(svc)
		if err != nil || len(l) != 1 {
			return -1
		}
		return l[0].ReadyReplicas
	}, 1)

	// load puts n requests in flight (one at the replica, the rest queued)
	// and waits until the router counts them.
	var reqs sync.WaitGroup
	defer reqs.Wait()
	defer unblock()
	inFlight := 0
	load := func(n int) {
		for range n {
			reqs.Add(1)
			go func() {
				defer reqs.Done()
				rec := httptest.NewRecorder()
				rt.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/service/"+svc+"/score", strings.NewReader(`{}`)))
			}()
		}
		inFlight += n
		waitReady(t, func() int {
			l, err := rt.Load(svc)
			if err != nil || len(l) != 1 {
				return -1
			}
			return l[0].InFlight
		}, inFlight)
	}
	settings := autoscale.Settings{Min: 1, Max: 20, TargetUtilization: 70, RefreshPeriod: 60 * time.Second, MaxConcurrentPerReplica: 1}
	t0 := clk.Now()
	// sampleUntil steps the fake clock one 100 ms sample at a time until
	// the writes so far satisfy done, failing after limit of fake time.
	sampleUntil := func(limit time.Duration, done func([]int32) bool) []int32 {
		t.Helper()
		for {
			mu.Lock()
			got := slices.Clone(writes)
			mu.Unlock()
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("scale writes %v: a count written again or lowered between periods", got)
				}
			}
			if done(got) {
				return got
			}
			if clk.Since(t0) > limit {
				t.Fatalf("scale writes %v after %v of fake time (refresh period 60 s)", got, clk.Since(t0))
			}
			clk.Step(100 * time.Millisecond)
			select {
			case <-wrote:
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	load(6)
	first := int32(autoscale.Desired(settings, 6))
	if got := sampleUntil(5*time.Second, func(w []int32) bool { return len(w) > 0 }); got[0] != first {
		t.Fatalf("first scale write %d, want %d", got[0], first)
	}
	// More samples at the same load: the watch cache still says 1 replica,
	// and the count is not written again (sampleUntil fails on a repeat).
	mark := clk.Since(t0)
	sampleUntil(5*time.Second, func([]int32) bool { return clk.Since(t0) >= mark+500*time.Millisecond })
	// Twice the load: the window's mean in-flight count rises, and so does
	// the count written.
	load(6)
	sampleUntil(10*time.Second, func(w []int32) bool { return len(w) > 1 })
}
