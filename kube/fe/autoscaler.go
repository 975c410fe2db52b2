package fe

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aksml/aksml/autoscale"
	"github.com/aksml/aksml/kube"
)

// versionScaler is the autoscaler of one autoscaled Deployment.
type versionScaler struct {
	a        *autoscale.Autoscaler
	lastScan time.Time
	// eager is the count an eager scale-up last wrote, until the
	// Deployment in the watch cache reaches it or the period decides: the
	// write is not repeated on every sample while the cache lags.
	eager int
}

type autoscaleJSON struct {
	Min            int     `json:"minReplicas"`
	Max            int     `json:"maxReplicas"`
	Target         float64 `json:"targetUtilization"`
	RefreshSeconds float64 `json:"refreshSeconds"`
}

// settingsOf reads a Deployment's autoscale settings; false when it is not
// autoscaled.
func settingsOf(d *appsv1.Deployment) (autoscale.Settings, bool) {
	raw, ok := d.Annotations[kube.AnnotationAutoscale]
	if !ok {
		return autoscale.Settings{}, false
	}
	var j autoscaleJSON
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		return autoscale.Settings{}, false
	}
	mc, _ := strconv.Atoi(d.Annotations[kube.AnnotationMaxConcurrent])
	return autoscale.Settings{
		Min: j.Min, Max: j.Max, TargetUtilization: j.Target,
		RefreshPeriod:           time.Duration(j.RefreshSeconds * float64(time.Second)),
		MaxConcurrentPerReplica: mc,
	}, true
}

// autoscaleLoop samples the router's load of every autoscaled version and,
// once per refresh period, writes the autoscaler's decision to the
// Deployment's scale subresource (azureml-fe scales replicas, never nodes).
// Scale-up is eager, as in the simulator: between periods every sample
// checks the last period's load (autoscale.Autoscaler.ScaleUp), so a step
// in load gets replicas within a sample instead of at the next period
// boundary, before requests queued behind too few replicas pass
// max_request_wait_time; scale-down waits for the period.
func (f *FrontEnd) autoscaleLoop(ctx context.Context) {
	t := f.clock.NewTicker(f.sample)
	defer t.Stop()
	scalers := map[string]*versionScaler{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		f.autoscaleOnce(ctx, scalers)
	}
}

func (f *FrontEnd) autoscaleOnce(ctx context.Context, scalers map[string]*versionScaler) {
	now := f.clock.Now()
	seen := map[string]bool{}
	for _, obj := range f.deps.GetStore().List() {
		d := obj.(*appsv1.Deployment)
		s, ok := settingsOf(d)
		if !ok || d.DeletionTimestamp != nil || d.Spec.Replicas == nil {
			continue
		}
		key := d.Namespace + "/" + d.Name
		seen[key] = true
		sc := scalers[key]
		if sc == nil {
			a, err := autoscale.New(s)
			if err != nil {
				f.log.Warn("front-end: autoscale settings", "deployment", key, "err", err)
				continue
			}
			sc = &versionScaler{a: a, lastScan: now}
			scalers[key] = sc
		} else if sc.a.Settings() != s.WithDefaults() {
			if err := sc.a.SetSettings(s); err != nil {
				continue
			}
		}
		service, version := d.Labels[kube.LabelService], d.Labels[kube.LabelVersion]
		loads, err := f.router.Load(service)
		if err != nil {
			continue
		}
		for _, l := range loads {
			if l.Version == version {
				sc.a.Record(autoscale.Observation{Time: now, InFlight: float64(l.InFlight)})
			}
		}
		cur := int(*d.Spec.Replicas)
		if cur >= sc.eager {
			sc.eager = 0 // the watch cache caught up
		}
		if now.Sub(sc.lastScan) < sc.a.Settings().RefreshPeriod {
			want, up := sc.a.ScaleUp(now, cur)
			if !up || want <= sc.eager {
				continue
			}
			if f.writeScale(ctx, d, want) {
				sc.eager = want
				f.log.Info("front-end: scaled", "deployment", key, "from", cur, "to", want, "reason", "eager scale up")
			}
			continue
		}
		sc.lastScan = now
		if sc.eager > cur {
			cur = sc.eager // written, not yet in the watch cache
		}
		sc.eager = 0
		dec := sc.a.Scale(now, cur)
		if dec.Desired == cur {
			continue
		}
		if f.writeScale(ctx, d, dec.Desired) {
			f.log.Info("front-end: scaled", "deployment", key, "from", cur, "to", dec.Desired, "reason", dec.Reason, "utilization", dec.Utilization)
		}
	}
	for k := range scalers {
		if !seen[k] {
			delete(scalers, k)
		}
	}
}

// writeScale sets d's replica count through its scale subresource.
func (f *FrontEnd) writeScale(ctx context.Context, d *appsv1.Deployment, n int) bool {
	key := d.Namespace + "/" + d.Name
	scale, err := f.client.AppsV1().Deployments(d.Namespace).GetScale(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		f.log.Warn("front-end: read scale", "deployment", key, "err", err)
		return false
	}
	scale.Spec.Replicas = int32(n)
	if _, err := f.client.AppsV1().Deployments(d.Namespace).UpdateScale(ctx, d.Name, scale, metav1.UpdateOptions{FieldManager: "aksml-fe"}); err != nil {
		f.log.Warn("front-end: scale", "deployment", key, "err", err)
		return false
	}
	return true
}
