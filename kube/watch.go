package kube

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/aksml/aksml/internal/wake"
)

// DefaultWatchMinGap is the least time between two wake-ups of a Watch
// channel: a rollout's burst of object changes wakes a waiter a few times
// a second at most, so each waiter's status reads stay a few per second.
const DefaultWatchMinGap = 250 * time.Millisecond

// watcher runs informers on the objects aksml manages (every namespace,
// label aksml.io/managed-by) while at least one Watch subscription is live,
// and turns their events into wake-ups.
type watcher struct {
	b wake.Broadcaster

	mu   sync.Mutex
	subs int
	stop func() // ends the informers and the forwarder; nil when not running
}

// Watch returns a channel woken when a Secret, Deployment, Pod or
// EndpointSlice of a service managed by aksml changes, at most once per
// DefaultWatchMinGap; see driver.Cluster. The first subscription starts a
// list and a watch of each kind (label-selected, every namespace); the last
// one to end stops them.
func (c *Cluster) Watch(ctx context.Context) <-chan struct{} {
	w := &c.watch
	ch := w.b.Subscribe(ctx)
	w.mu.Lock()
	w.subs++
	if w.subs == 1 {
		w.stop = c.startWatch()
	}
	w.mu.Unlock()
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.subs--
		var stop func()
		if w.subs == 0 {
			stop, w.stop = w.stop, nil
		}
		w.mu.Unlock()
		if stop != nil {
			stop()
		}
	})
	return ch
}

// startWatch starts the informers and returns what stops them and waits
// for their goroutines.
func (c *Cluster) startWatch() func() {
	sel := labels.Set{LabelManagedBy: ManagedBy}.String()
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = sel }))
	raw := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case raw <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke}
	for _, inf := range []cache.SharedIndexInformer{
		factory.Core().V1().Secrets().Informer(),
		factory.Apps().V1().Deployments().Informer(),
		factory.Core().V1().Pods().Informer(),
		factory.Discovery().V1().EndpointSlices().Informer(),
	} {
		_, _ = inf.AddEventHandler(h)
	}
	done := make(chan struct{})
	factory.Start(done)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-raw:
			}
			c.watch.b.Notify()
			gap := time.NewTimer(DefaultWatchMinGap)
			select {
			case <-done:
				gap.Stop()
				return
			case <-gap.C:
			}
		}
	})
	return func() {
		close(done)
		factory.Shutdown()
		wg.Wait()
	}
}
