package driver

// Worse reports whether a service in state s is worse off than one in
// state t, in the order Healthy, Transitioning, Unhealthy, Unschedulable,
// Failed (other states, such as Deleting, count as Transitioning). A
// service with several versions is as bad as its worst version: drivers
// keep the first version whose state is Worse than the worst so far.
func (s State) Worse(t State) bool { return s.severity() > t.severity() }

func (s State) severity() int {
	switch s {
	case Healthy:
		return 0
	case Transitioning:
		return 1
	case Unhealthy:
		return 2
	case Unschedulable:
		return 3
	case Failed:
		return 4
	}
	return 1
}
