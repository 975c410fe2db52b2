package kube_test

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aksml/aksml/kube"
)

// A GPU replica the scheduler cannot place: the version is Unschedulable
// with the scheduler's own message, and Failed once it has waited five
// minutes.
func ExampleVersionState() {
	one := int32(1)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu-svc", Labels: map[string]string{kube.LabelVersion: "gpu-svc"}},
		Spec:       appsv1.DeploymentSpec{Replicas: &one},
	}
	p := corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", LastTransitionTime: metav1.NewTime(start),
	}}}}
	for _, after := range []time.Duration{time.Minute, 5 * time.Minute} {
		vs := kube.VersionState(d, []corev1.Pod{p}, start.Add(after), kube.Options{})
		fmt.Printf("%v: %s: %s\n", after, vs.State, vs.Message)
	}
	// Output:
	// 1m0s: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.
	// 5m0s: Failed: Couldn't Schedule because the kubernetes cluster didn't have available resources after trying for 00:05:00: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.
}
