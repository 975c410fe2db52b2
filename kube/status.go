package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/frontend"
)

// ServiceStatus reads the service's state from the cluster (see
// VersionState for the rules); NotFound if there is no such service.
func (c *Cluster) ServiceStatus(ctx context.Context, name string) (*driver.ServiceStatus, error) {
	root, err := c.find(ctx, name)
	if err != nil {
		return nil, err
	}
	ns := root.Namespace
	sel := labels.Set{LabelManagedBy: ManagedBy, LabelService: name}.String()
	deps, err := c.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apiError(err, "service %q: list deployments", name)
	}
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apiError(err, "service %q: list pods", name)
	}
	eps, err := c.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apiError(err, "service %q: list endpoint slices", name)
	}
	// Replicas the front-end can route to: ready endpoints of the
	// version's Service.
	routable := map[string]int{}
	for _, es := range eps.Items {
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				routable[es.Labels[LabelVersion]] += len(ep.Addresses)
			}
		}
	}
	byVersion := map[string]*appsv1.Deployment{}
	for i := range deps.Items {
		d := &deps.Items[i]
		if d.DeletionTimestamp == nil {
			byVersion[d.Labels[LabelVersion]] = d
		}
	}
	podsOf := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		podsOf[p.Labels[LabelVersion]] = append(podsOf[p.Labels[LabelVersion]], p)
	}
	// With TLS on, the URIs are https://CNAME[:PORT]/...; a front-end
	// certificate Secret that does not parse counts as none.
	b, _ := c.scoringBases(ctx)
	base := b.scoring
	st := &driver.ServiceStatus{
		Name:       name,
		Generation: generationOf(root.Annotations),
		ScoringURI: base + frontend.ScoringPath(name),
		SwaggerURI: base + frontend.SwaggerPath(name),
		State:      driver.Healthy,
	}
	now := c.opts.Clock.Now()
	versions := Versions(root)
	endpoint := root.Annotations[AnnotationEndpoint] == "true"
	for _, vn := range versions {
		var vs driver.VersionStatus
		if d, ok := byVersion[vn]; ok {
			vs = VersionState(d, podsOf[vn], now, c.opts)
			// A ready pod serves once its endpoint is ready: until then
			// the version is still starting.
			if r := routable[vn]; r < vs.Ready {
				vs.Ready = r
				vs.ServesTraffic = r > 0
				if vs.State == driver.Healthy {
					vs.State = driver.Transitioning
					vs.Message = fmt.Sprintf("waiting for the endpoints: %d of %d ready replicas routable", r, d.Status.ReadyReplicas)
				}
			}
		} else {
			vs = driver.VersionStatus{State: driver.Transitioning, Message: "waiting for the deployment to be created"}
		}
		vs.Name = vn
		if endpoint {
			vs.ScoringURI = base + frontend.VersionScoringPath(name, vn)
		} else {
			vs.ScoringURI = st.ScoringURI
		}
		st.Versions = append(st.Versions, vs)
		if vs.State.Worse(st.State) {
			st.State = vs.State
			st.Message = vs.Message
			if endpoint && vs.Message != "" {
				st.Message = "version " + vn + ": " + vs.Message
			}
		}
	}
	if len(versions) == 0 {
		st.State, st.Message = driver.Transitioning, "the service has no versions yet"
	}
	return st, nil
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

var imagePullReasons = map[string]bool{"ImagePullBackOff": true, "ErrImagePull": true, "ErrImageNeverPull": true, "InvalidImageName": true}

// VersionState derives one version's state from its Deployment and pods at
// time now, in this order:
//
//   - Failed: the Deployment's progress deadline passed
//     (ProgressDeadlineExceeded); a container in CrashLoopBackOff has
//     restarted opts.CrashLoopRestarts times (the message carries the last
//     exit's message); a container could not pull its image for
//     opts.ImagePullGrace (InvalidImageName at once); pods stayed
//     unschedulable for opts.UnschedulableTimeout.
//   - Unschedulable: a pod has PodScheduled=False reason Unschedulable; the
//     message is the scheduler's own ("0/3 nodes are available: 3
//     Insufficient nvidia.com/gpu. ...").
//   - Unhealthy: a pod runs but is not ready, after the rollout completed
//     or after its readiness probe had every chance to pass (period ×
//     failure threshold + timeout).
//   - Transitioning: the rollout is in progress (new replicas not all
//     updated, available, or old replicas remain).
//   - Healthy: every desired replica is updated and available.
func VersionState(d *appsv1.Deployment, pods []corev1.Pod, now time.Time, opts Options) driver.VersionStatus {
	o := opts.withDefaults()
	vs := driver.VersionStatus{Name: d.Labels[LabelVersion]}
	if d.Spec.Replicas != nil {
		vs.Desired = int(*d.Spec.Replicas)
	}
	vs.Ready = int(d.Status.ReadyReplicas)
	vs.Replicas = int(d.Status.Replicas)
	vs.ServesTraffic = vs.Ready > 0
	sort.Slice(pods, func(i, j int) bool {
		if !pods[i].CreationTimestamp.Equal(&pods[j].CreationTimestamp) {
			return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp)
		}
		return pods[i].Name < pods[j].Name
	})
	var failed, unsched, unhealthy string
	var unschedSince time.Time
	for i := range pods {
		p := &pods[i]
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			vs.Restarts += int(cs.RestartCount)
		}
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			w := cs.State.Waiting
			switch {
			case failed != "":
			case w != nil && w.Reason == "CrashLoopBackOff" && int(cs.RestartCount) >= o.CrashLoopRestarts:
				failed = fmt.Sprintf("CrashLoopBackOff: container %s of pod %s restarted %d times", cs.Name, p.Name, cs.RestartCount)
				if t := cs.LastTerminationState.Terminated; t != nil {
					failed += fmt.Sprintf("; last exit code %d (%s)", t.ExitCode, t.Reason)
					if t.Message != "" {
						failed += ": " + strings.TrimSpace(t.Message)
					}
				}
			case w != nil && imagePullReasons[w.Reason] && (w.Reason == "InvalidImageName" || now.Sub(p.CreationTimestamp.Time) >= o.ImagePullGrace):
				failed = fmt.Sprintf("%s: container %s of pod %s: %s", w.Reason, cs.Name, p.Name, w.Message)
			}
			if r := cs.State.Running; r != nil && !cs.Ready && p.Status.Phase == corev1.PodRunning && unhealthy == "" {
				settle := readinessSettle(p, cs.Name)
				if completed(d) || now.Sub(r.StartedAt.Time) >= settle {
					unhealthy = fmt.Sprintf("container %s of pod %s is running but not ready (readiness probe failing)", cs.Name, p.Name)
				}
			}
		}
		if cond := podCondition(p, corev1.PodScheduled); cond != nil && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
			if unsched == "" {
				unsched = cond.Message
			}
			if t := cond.LastTransitionTime.Time; unschedSince.IsZero() || t.Before(unschedSince) {
				unschedSince = t
			}
		}
	}
	if cond := condition(d, appsv1.DeploymentProgressing); failed == "" && cond != nil && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded" {
		failed = "ProgressDeadlineExceeded: " + cond.Message
	}
	if failed == "" && unsched != "" && !unschedSince.IsZero() && now.Sub(unschedSince) >= o.UnschedulableTimeout {
		failed = fmt.Sprintf("Couldn't Schedule because the kubernetes cluster didn't have available resources after trying for %s: %s", hms(o.UnschedulableTimeout), unsched)
	}
	switch {
	case failed != "":
		vs.State, vs.Message = driver.Failed, failed
	case unsched != "":
		vs.State, vs.Message = driver.Unschedulable, unsched
	case unhealthy != "":
		vs.State, vs.Message = driver.Unhealthy, unhealthy
	case !rolledOut(d):
		vs.State = driver.Transitioning
		vs.Message = fmt.Sprintf("rolling out: %d of %d replicas updated, %d available, %d in all", d.Status.UpdatedReplicas, vs.Desired, d.Status.AvailableReplicas, d.Status.Replicas)
	default:
		vs.State = driver.Healthy
	}
	return vs
}

// rolledOut: the controller saw the latest spec, every desired replica is
// updated and available, and no old replica remains.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want && s.ReadyReplicas >= want
}

// completed: the latest rollout finished once (Progressing reason
// NewReplicaSetAvailable), so a replica that is not ready now is a fault,
// not a start.
func completed(d *appsv1.Deployment) bool {
	c := condition(d, appsv1.DeploymentProgressing)
	return d.Status.ObservedGeneration >= d.Generation && c != nil && c.Reason == "NewReplicaSetAvailable"
}

// readinessSettle is how long a container's readiness probe may fail while
// it starts: initial delay + period × failure threshold + timeout.
func readinessSettle(p *corev1.Pod, container string) time.Duration {
	for _, c := range p.Spec.Containers {
		if c.Name == container && c.ReadinessProbe != nil {
			rp := c.ReadinessProbe
			return time.Duration(rp.InitialDelaySeconds+rp.PeriodSeconds*max(rp.FailureThreshold, 1)+rp.TimeoutSeconds) * time.Second
		}
	}
	return 30 * time.Second
}

// hms formats d as 00:05:00, as the Azure message does.
func hms(d time.Duration) string {
	s := int(d.Seconds())
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}
