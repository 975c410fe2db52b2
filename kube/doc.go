// Package kube is the Kubernetes backend of aksml: a driver.Provider that
// attaches any cluster (AKS or not) by kubeconfig and context, and a
// driver.Cluster that runs each service as Kubernetes objects through
// client-go, written by server-side apply with one field manager.
//
// For a service NAME the driver writes, in the deploy config's namespace
// (DefaultNamespace when it names none):
//
//   - the Secret aksml-NAME with the keys (never ConfigMaps, annotations or
//     logs) and the service's settings; it owns everything below, so
//     deleting it deletes the service;
//   - per version, a Deployment (the image by digest, requests and limits
//     from cpu_cores, memory_gb, cpu_cores_limit, memory_gb_limit;
//     gpu_cores as nvidia.com/gpu limits with the AKS GPU node selector
//     kubernetes.azure.com/accelerator=nvidia and a toleration for
//     nvidia.com/gpu taints; liveness and readiness probes from the deploy
//     config; labels for service, version and models; model digests in
//     annotations) and a ClusterIP Service. Endpoint versions are one
//     Deployment each behind the endpoint's one route.
//
// Status comes from the cluster (see VersionState): the scheduler's own
// message for Unschedulable, CrashLoopBackOff and ImagePullBackOff past
// thresholds or ProgressDeadlineExceeded for Failed. Logs come from the
// pods. The package's TestIntegration* tests run the conformance suite
// against a real control plane started by kube/kubetest.
package kube
