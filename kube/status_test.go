package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func dep(desired int32, mut func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "svc", Generation: 2, Labels: map[string]string{LabelVersion: "svc"}},
		Spec:       appsv1.DeploymentSpec{Replicas: &desired},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: 2, Replicas: desired, UpdatedReplicas: desired, ReadyReplicas: desired, AvailableReplicas: desired,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}},
		},
	}
	if mut != nil {
		mut(d)
	}
	return d
}

func rolling(d *appsv1.Deployment) {
	d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = 0, 0, 0
	d.Status.Conditions[0].Reason = "ReplicaSetUpdated"
}

func pod(name string, mut func(*corev1.Pod)) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: ContainerName, ReadinessProbe: &corev1.Probe{
			PeriodSeconds: 10, FailureThreshold: 3, TimeoutSeconds: 1,
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: ContainerName, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}},
		}}},
	}
	if mut != nil {
		mut(&p)
	}
	return p
}

func crashing(restarts int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		cs := &p.Status.ContainerStatuses[0]
		cs.Ready, cs.RestartCount = false, restarts
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s"}}
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: "model.pkl not found\n"}
	}
}

func waiting(reason string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		cs := &p.Status.ContainerStatuses[0]
		cs.Ready = false
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: `Back-off pulling image "example.com/x"`}}
	}
}

func unschedulable(p *corev1.Pod) {
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.", LastTransitionTime: metav1.NewTime(t0),
	}}}
}

func unready(p *corev1.Pod) { p.Status.ContainerStatuses[0].Ready = false }

func TestVersionState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		d     *appsv1.Deployment
		pods  []corev1.Pod
		after time.Duration
		want  driver.State
		msg   string
	}{
		{"available", dep(2, nil), []corev1.Pod{pod("a", nil), pod("b", nil)}, 0, driver.Healthy, ""},
		{"zero replicas", dep(0, nil), nil, 0, driver.Healthy, ""},
		{"new pods starting", dep(2, rolling), []corev1.Pod{pod("a", unready), pod("b", unready)}, 5 * time.Second, driver.Transitioning, "rolling out: 0 of 2"},
		{"controller has not seen the spec", dep(1, func(d *appsv1.Deployment) { d.Generation = 3 }), []corev1.Pod{pod("a", nil)}, 0, driver.Transitioning, "rolling out"},
		{"old replica left", dep(1, func(d *appsv1.Deployment) { d.Status.Replicas = 2 }), []corev1.Pod{pod("a", nil), pod("b", nil)}, 0, driver.Transitioning, "2 in all"},
		{"unready past its probe", dep(1, rolling), []corev1.Pod{pod("a", unready)}, 31 * time.Second, driver.Unhealthy, "running but not ready"},
		{"unready after the rollout", dep(1, func(d *appsv1.Deployment) { d.Status.ReadyReplicas, d.Status.AvailableReplicas = 0, 0 }), []corev1.Pod{pod("a", unready)}, time.Second, driver.Unhealthy, "pod a is running but not ready"},
		{"crash loop below threshold", dep(1, rolling), []corev1.Pod{pod("a", crashing(2))}, time.Minute, driver.Transitioning, ""},
		{"crash loop past threshold", dep(1, rolling), []corev1.Pod{pod("a", crashing(3))}, time.Minute, driver.Failed, "CrashLoopBackOff: container score of pod a restarted 3 times; last exit code 1 (Error): model.pkl not found"},
		{"image pull in grace", dep(1, rolling), []corev1.Pod{pod("a", waiting("ImagePullBackOff"))}, time.Minute, driver.Transitioning, ""},
		{"image pull past grace", dep(1, rolling), []corev1.Pod{pod("a", waiting("ErrImagePull"))}, 2 * time.Minute, driver.Failed, `ErrImagePull: container score of pod a: Back-off pulling image "example.com/x"`},
		{"invalid image name", dep(1, rolling), []corev1.Pod{pod("a", waiting("InvalidImageName"))}, 0, driver.Failed, "InvalidImageName"},
		{"unschedulable", dep(1, rolling), []corev1.Pod{pod("a", unschedulable)}, time.Minute, driver.Unschedulable, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."},
		{"unschedulable for five minutes", dep(1, rolling), []corev1.Pod{pod("a", unschedulable)}, 5 * time.Minute, driver.Failed, "Couldn't Schedule because the kubernetes cluster didn't have available resources after trying for 00:05:00: 0/3 nodes"},
		{"progress deadline", dep(1, func(d *appsv1.Deployment) {
			rolling(d)
			d.Status.Conditions[0] = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "svc-5d8" has timed out progressing.`}
		}), []corev1.Pod{pod("a", unready)}, 0, driver.Failed, `ProgressDeadlineExceeded: ReplicaSet "svc-5d8" has timed out progressing.`},
		{"a terminating pod does not count", dep(1, nil), []corev1.Pod{pod("a", nil), pod("old", func(p *corev1.Pod) {
			crashing(9)(p)
			now := metav1.NewTime(t0)
			p.DeletionTimestamp = &now
		})}, 0, driver.Healthy, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vs := VersionState(tc.d, tc.pods, t0.Add(tc.after), Options{})
			if vs.State != tc.want || !strings.Contains(vs.Message, tc.msg) {
				t.Errorf("state %s %q, want %s containing %q", vs.State, vs.Message, tc.want, tc.msg)
			}
		})
	}
}

func TestVersionStateCounts(t *testing.T) {
	t.Parallel()
	d := dep(3, func(d *appsv1.Deployment) { d.Status.ReadyReplicas, d.Status.Replicas = 2, 3 })
	vs := VersionState(d, []corev1.Pod{pod("a", crashing(1)), pod("b", nil), pod("c", nil)}, t0, Options{})
	if vs.Desired != 3 || vs.Ready != 2 || vs.Replicas != 3 || vs.Restarts != 1 || !vs.ServesTraffic {
		t.Errorf("%+v", vs)
	}
}

func TestObjectName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 32)
	for _, tc := range []struct{ service, version, want string }{
		{"svc", "svc", "svc"},
		{"ep", "v2", "ep-v2"},
		{long, long + "-x", ""},
	} {
		got := objectName(tc.service, tc.version)
		if tc.want != "" && got != tc.want {
			t.Errorf("objectName(%q, %q) = %q, want %q", tc.service, tc.version, got, tc.want)
		}
		if len(got) > 63 {
			t.Errorf("objectName(%q, %q) = %q is longer than 63", tc.service, tc.version, got)
		}
	}
	if objectName(long, long+"-x") == objectName(long, long+"-y") {
		t.Errorf("two long names collide")
	}
}

func TestReplicas(t *testing.T) {
	t.Parallel()
	auto := func(lo, hi int) *driver.VersionSpec {
		return &driver.VersionSpec{Scale: driver.Scale{Autoscale: true, Min: lo, Max: hi}}
	}
	for _, tc := range []struct {
		v       *driver.VersionSpec
		current int32
		exists  bool
		want    int32
	}{
		{&driver.VersionSpec{Scale: driver.Scale{Replicas: 3}}, 7, true, 3},
		{auto(2, 5), 0, false, 2},
		{auto(2, 5), 4, true, 4},
		{auto(2, 5), 9, true, 5},
		{auto(2, 5), 1, true, 2},
	} {
		if got := replicas(tc.v, tc.current, tc.exists); got != tc.want {
			t.Errorf("replicas(%+v, %d, %v) = %d, want %d", tc.v.Scale, tc.current, tc.exists, got, tc.want)
		}
	}
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{apierrors.NewNotFound(gr, "x"), errcode.NotFound},
		{apierrors.NewAlreadyExists(gr, "x"), errcode.AlreadyExists},
		{apierrors.NewConflict(gr, "x", errors.New("changed")), errcode.Conflict},
		{apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "x", nil), errcode.InvalidArgument},
		{apierrors.NewUnauthorized("who"), errcode.Unauthenticated},
		{apierrors.NewForbidden(gr, "x", errors.New("rbac")), errcode.FailedPrecondition},
		{apierrors.NewServiceUnavailable("busy"), errcode.Unavailable},
		{fmt.Errorf("dial: %w", &timeoutErr{}), errcode.Unavailable},
		{fmt.Errorf("client rate limiter Wait returned an error: %w", rateLimited(t)), errcode.DeadlineExceeded},
	} {
		got := apiError(tc.err, "doing %s", "x")
		if !errors.Is(got, tc.want) || !strings.HasPrefix(got.Error(), "doing x: ") {
			t.Errorf("apiError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if apiError(nil, "x") != nil {
		t.Errorf("apiError(nil) is not nil")
	}
}

type timeoutErr struct{}

func (*timeoutErr) Error() string   { return "i/o timeout" }
func (*timeoutErr) Timeout() bool   { return true }
func (*timeoutErr) Temporary() bool { return true }

func TestDeploymentApplyAccelerators(t *testing.T) {
	t.Parallel()
	c := &Cluster{opts: (&Options{FPGANodeSelector: map[string]string{"aksml.io/fpga": "arria10"}}).withDefaults()}
	for _, tc := range []struct {
		name        string
		gpus, fpgas int
		gpuSelector bool
		resource    string
		selector    map[string]string
		toleration  string
	}{
		{"cpu", 0, 0, true, "", nil, ""},
		{"gpu on a cluster with GPU nodes", 2, 0, true, ResourceGPU, map[string]string{LabelAccelerator: "nvidia"}, ResourceGPU},
		{"gpu on a cluster without", 1, 0, false, ResourceGPU, nil, ResourceGPU},
		{"fpga", 0, 1, false, DefaultFPGAResource, map[string]string{"aksml.io/fpga": "arria10"}, DefaultFPGAResource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &driver.ServiceSpec{Name: "acc", Versions: []driver.VersionSpec{{Name: "acc",
				Replica: driver.ReplicaTemplate{CPU: 1, MemoryGB: 2, GPUs: tc.gpus, FPGAs: tc.fpgas}, Scale: driver.Scale{Replicas: 1}}}}
			d := c.deploymentApply("ns", s, &s.Versions[0], nil, 1, tc.gpuSelector)
			ps := d.Spec.Template.Spec
			res := ps.Containers[0].Resources
			if tc.resource != "" {
				q := (*res.Limits)[corev1.ResourceName(tc.resource)]
				if q.Value() != int64(tc.gpus+tc.fpgas) {
					t.Errorf("limit %s = %v", tc.resource, q.String())
				}
			} else if res.Limits != nil {
				t.Errorf("limits %v on a CPU replica", *res.Limits)
			}
			if fmt.Sprint(ps.NodeSelector) != fmt.Sprint(tc.selector) && !(len(ps.NodeSelector) == 0 && len(tc.selector) == 0) {
				t.Errorf("node selector %v, want %v", ps.NodeSelector, tc.selector)
			}
			got := ""
			if len(ps.Tolerations) > 0 {
				got = *ps.Tolerations[0].Key
			}
			if got != tc.toleration {
				t.Errorf("toleration %q, want %q", got, tc.toleration)
			}
		})
	}
}

// rateLimited is the error client-go's rate limiter gives when waiting for
// a token would pass the context's deadline (a WaitForDeployment whose
// deadline comes while its client is throttled gets it).
func rateLimited(t *testing.T) error {
	lim := rate.NewLimiter(rate.Every(time.Hour), 1)
	lim.Allow()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := lim.Wait(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("rate.Limiter.Wait = %v, want its own would-exceed-the-deadline error", err)
	}
	return err
}
