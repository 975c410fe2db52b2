package fe

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/kube"
)

// FuzzRouteAnnotations feeds arbitrary annotation values (anyone with
// write access to the cluster can set them) to the front-end's parsing:
// it never panics, yields values the router accepts or rejects with an
// error, and the autoscale and version-list parsers never panic either.
func FuzzRouteAnnotations(f *testing.F) {
	f.Add("20", "0", "1", "500", "60000", `{"minReplicas":1,"maxReplicas":3,"targetUtilization":70,"refreshSeconds":1}`, `["v1","v2"]`)
	f.Add("-5", "NaN", "1e300", "+Inf", "9223372036854775807", `{"minReplicas":-1}`, `[`)
	f.Add("", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, traffic, mirror, maxc, wait, timeout, auto, versions string) {
		a := map[string]string{
			kube.AnnotationTraffic: traffic, kube.AnnotationMirror: mirror, kube.AnnotationMaxConcurrent: maxc,
			kube.AnnotationMaxQueueWait: wait, kube.AnnotationScoringTimeout: timeout, kube.AnnotationAutoscale: auto,
			kube.AnnotationDefault: "true",
		}
		v := versionOf("v1", a, []frontend.Replica{{ID: "b", URL: "http://127.0.0.1:1"}, {ID: "a", URL: "http://127.0.0.1:2", Ready: true}})
		if v.TrafficPercent < 0 || v.TrafficPercent > 100 || v.MirrorPercent < 0 || v.MirrorPercent > 100 || v.MaxConcurrentPerReplica < 0 || v.MaxQueueWait < 0 || v.ScoringTimeout < 0 {
			t.Fatalf("out of range: %+v", v)
		}
		rt := frontend.New(nil)
		_ = rt.SetRoute(frontend.Route{Name: "svc", Versions: []frontend.Version{v}})
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: a}}
		settingsOf(d)
		kube.Versions(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{kube.AnnotationVersions: versions}}})
	})
}
