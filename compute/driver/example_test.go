package driver_test

import (
	"fmt"

	"github.com/aksml/aksml/compute/driver"
)

// Healthy and Failed end a deployment; the other states may still change
// without a new operation.
func ExampleState_Final() {
	for _, s := range []driver.State{driver.Transitioning, driver.Unschedulable, driver.Unhealthy, driver.Healthy, driver.Failed} {
		fmt.Println(s, s.Final())
	}
	// Output:
	// Transitioning false
	// Unschedulable false
	// Unhealthy false
	// Healthy true
	// Failed true
}
