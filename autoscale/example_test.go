package autoscale_test

import (
	"fmt"
	"time"

	"github.com/aksml/aksml/autoscale"
)

func ExampleReplicasForRate() {
	// 20 requests/s taking 10 s each, at 70 % target utilization and one
	// concurrent request per replica (reference §3).
	fmt.Println(autoscale.ReplicasForRate(20, 10*time.Second, 70, 1))
	// Output: 286
}

func ExampleAutoscaler() {
	a, _ := autoscale.New(autoscale.Settings{Min: 1, Max: 10}) // 70 %, 1 s, 60 s delay
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	replicas := 1
	for _, tick := range []struct {
		at       time.Duration
		inFlight float64
	}{{0, 0}, {time.Second, 4}, {2 * time.Second, 1}, {61 * time.Second, 1}, {62 * time.Second, 1}} {
		now := start.Add(tick.at)
		a.Record(autoscale.Observation{Time: now, InFlight: tick.inFlight})
		d := a.Scale(now, replicas)
		fmt.Printf("t=%v %v\n", tick.at, d)
		replicas = d.Desired
	}
	// Output:
	// t=0s hold: 1 → 1 replicas (load 0.00, utilization 0%)
	// t=1s scale up: 1 → 6 replicas (load 4.00, utilization 400%)
	// t=2s hold: load low for less than the scale-down delay: 6 → 6 replicas (load 1.00, utilization 17%)
	// t=1m1s scale down: 6 → 2 replicas (load 1.00, utilization 17%)
	// t=1m2s hold: 2 → 2 replicas (load 1.00, utilization 50%)
}
