// Package autoscale decides how many replicas a version should have, with
// the semantics of azureml-fe (reference §3): utilization is the requests in
// flight divided by (replicas × max concurrent requests per replica); while
// it is above the target the replica count rises at once ("eager", every
// refresh period); it falls only after the load has stayed low for the
// scale-down delay (about a minute, "conservative"); it always stays within
// the minimum and maximum.
//
// The decision follows Knative's autoscaler in shape: a small Autoscaler
// value records load observations with their times, and Scale(now, current)
// returns a Decision computed from the settings, the recorded observations
// and now only — no clock, no goroutine — so tests script time. The caller
// (a backend's control loop) samples the router's in-flight count
// (frontend.Router.Load), calls Record, then Scale, once per RefreshPeriod;
// between periods it may call ScaleUp on every pass, so that a step in load
// gets replicas at once (the simulator and the in-cluster front-end,
// kube/fe, do).
//
// ReplicasForRate is the documented sizing formula,
// ceil(rps × request time ÷ target utilization ÷ max concurrent):
// 20 requests/s × 10 s ÷ 0.7 → 286 replicas at one concurrent request each.
package autoscale
