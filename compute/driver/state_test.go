package driver_test

import (
	"fmt"
	"testing"

	"github.com/aksml/aksml/compute/driver"
)

func TestStateWorse(t *testing.T) {
	t.Parallel()
	order := []driver.State{driver.Healthy, driver.Transitioning, driver.Unhealthy, driver.Unschedulable, driver.Failed}
	for i, s := range order {
		for j, u := range order {
			if got := s.Worse(u); got != (i > j) {
				t.Errorf("%s.Worse(%s) = %v, want %v", s, u, got, i > j)
			}
		}
	}
	for _, other := range []driver.State{driver.Deleting, ""} {
		for _, u := range order {
			want := u == driver.Healthy
			if got := other.Worse(u); got != want {
				t.Errorf("%q.Worse(%s) = %v, want %v (ranked as Transitioning)", other, u, got, want)
			}
		}
		if other.Worse(driver.Transitioning) || driver.Transitioning.Worse(other) {
			t.Errorf("%q and Transitioning are not of the same rank", other)
		}
	}
}

// A service is as bad as its worst version.
func ExampleState_Worse() {
	worst := driver.Healthy
	for _, v := range []driver.State{driver.Transitioning, driver.Unschedulable, driver.Unhealthy} {
		if v.Worse(worst) {
			worst = v
		}
	}
	fmt.Println(worst)
	// Output: Unschedulable
}
