// Package simulator is an in-process Azure Kubernetes Service: a
// compute/driver backend whose clusters are simulated nodes running real
// replicas behind a real HTTP front-end on loopback.
//
// It behaves as a deployment on AKS does, so Go code that deploys models is
// debugged and unit-tested locally, in milliseconds:
//
//   - nodes are sized from the VM-size catalog, less what AKS reserves for
//     the kubelet, the OS and system pods; replicas are placed by their CPU,
//     memory, GPU and FPGA requests, and a replica that fits nowhere leaves
//     its service Unschedulable with the scheduler's own words ("0/3 nodes
//     are available: 3 Insufficient nvidia.com/gpu."), Failed after five
//     minutes;
//   - replicas run the scoring runtime (package scoring): Go handlers in
//     process, score.py in persistent Python workers, or, with an image and
//     a Docker engine, containers;
//   - liveness probes follow the deploy config (period, initial delay,
//     timeout, thresholds) and restart failing replicas; a replica whose
//     init keeps failing goes into CrashLoopBackOff with back-off, and its
//     service Fails with the log tail;
//   - the front-end (package frontend) authenticates, splits traffic,
//     queues, times out and maps status codes as azureml-fe does, and its
//     in-flight figures drive the autoscaler (package autoscale);
//   - updates roll: new replicas are ready before old ones leave;
//   - with TLS (Cluster.SetTLS, from a target's enable_ssl) the front end
//     serves HTTPS on a second loopback listener: scoring URIs become
//     https://CNAME:PORT/..., the status's ScoringAddress is the listener
//     the library's clients dial for that name, and plain HTTP is answered
//     308 to it.
//
// Time is injected (Options.Clock): tests step a fake clock and call
// Cluster.Sync instead of sleeping. Fault injection (InjectFault,
// KillReplica, RemoveNode) makes replicas slow, failing or gone.
//
// The simulator passes the conformance suite in compute/drivertest, as the
// Kubernetes backend does.
package simulator
