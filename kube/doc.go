// Package kube is the Kubernetes backend of aksml: a driver.Provider that
// attaches any cluster (AKS or not) by kubeconfig and context, and a
// driver.Cluster that runs each service as Kubernetes objects through
// client-go, written by server-side apply with one field manager
// (DefaultFieldManager), so re-applying an unchanged spec changes nothing.
//
// For a service NAME the driver writes, in the deploy config's namespace
// (DefaultNamespace, "azureml", when it names none; created when missing,
// never deleted):
//
//   - the Secret aksml-NAME with the keys (never ConfigMaps, annotations or
//     logs) and the service's settings in annotations; it owns everything
//     below (owner references), so deleting it deletes the service;
//   - per version, a Deployment (the image by digest, DefaultImage when the
//     template names none; requests and limits from cpu_cores, memory_gb,
//     cpu_cores_limit, memory_gb_limit; gpu_cores as nvidia.com/gpu limits
//     with a toleration for nvidia.com/gpu taints and, on clusters that have
//     GPU nodes, the AKS node selector kubernetes.azure.com/accelerator=nvidia;
//     FPGAs as Options.FPGAResource with Options.FPGANodeSelector; liveness
//     and readiness probes from the deploy config; labels for service,
//     version and models; model digests and the route settings in
//     annotations) and a ClusterIP Service. Endpoint versions are one
//     Deployment each behind the endpoint's one route.
//
// Status comes from the cluster (VersionState): Transitioning while a
// rollout runs, Healthy when every replica is available and routable,
// Unschedulable with the scheduler's own message, Failed on
// CrashLoopBackOff or ImagePullBackOff past thresholds, ProgressDeadlineExceeded
// or five minutes unschedulable, Unhealthy when running but not ready.
// Logs come from the pods; tokens are signed with the cluster's key
// (TokenKey).
//
// The in-cluster front-end program lives in package kube/fe: it programs
// a frontend.Router from watches (Secrets, Deployments, EndpointSlices) and
// autoscales versions through the Deployments' scale subresource.
// cmd/aksml-fe runs it in the cluster; Cluster.InstallFrontEnd (or
// Options.InstallFrontEnd) applies its objects, named as azureml-fe's.
//
// TLS (enable_ssl): Cluster.SetTLS writes the front end's certificate as
// the Secret azuremlfessl (FrontEndTLSSecret, type kubernetes.io/tls, the
// CA bundle in ca.crt, the name in the annotation aksml.io/cname) in the
// front end's namespace; the front end watches it and serves HTTPS on its
// Service's port 443 (FrontEndTLSPort in the pod), answering plain HTTP
// with 308 to https://CNAME[:PORT]. A new certificate applies to new
// handshakes within the watch's latency, without restarting anything;
// connections already open keep theirs. Status reports the certificate a
// handshake with the front end (at Options.ScoringTLSAddress, else port 443
// of the front end's address) presents — the previous one until the front
// end has picked up a new Secret — or the Secret's when the front end
// cannot be reached from here; service scoring URIs start with
// https://CNAME[:PORT] as soon as the Secret is written.
//
// Cluster.Watch runs informers on the objects aksml manages while someone
// waits, so waits are woken by the cluster rather than polling it.
//
// Subpackages: kube/fe is the front-end program; kube/controlplane starts a
// real control plane on loopback (binaries from scripts/kubebins), which
// kube/local runs as a local cluster and kube/kubetest ties to a test for
// the TestIntegration* tests; kube/aks creates and attaches AKS clusters
// through ARM; kube/kind creates local kind clusters.
package kube
