// Package local is a local AKS without Docker: a real Kubernetes control
// plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// built by scripts/kubebins) on a loopback address, virtual-kubelet nodes
// sized and labelled from the provisioning config's VM size (GPUs, their
// AKS label and taint included) whose provider really runs each pod, the
// in-cluster front-end as a pod behind a loopback load balancer, and the
// kube driver applying exactly the manifests it applies to AKS. Use it to
// debug those manifests, their rollouts and their status on one machine:
//
//	c, err := local.Start(ctx, "aks-local", shape, nil)
//	defer c.Close()
//	err = c.ApplyService(ctx, spec) // or compute.Create with NewProvider, then aml.Deploy
//
// # Pods
//
// Every pod gets a loopback address of its own: Kubernetes sees pod IP
// 10.244.A.B, the pod listens on 127.N.A.B (Cluster.PodAddr), since the
// API server refuses loopback endpoint addresses. A container's "0.0.0.0"
// arguments become that address. What runs:
//
//   - a replica of an entry script (score.py): the aksml scoring server as a
//     child process, with the service's source directory, models and
//     interpreter. The child is this program re-executed with
//     AKSML_LOCAL_CONTAINER=aksml-score in its environment, which this
//     package's init turns into the scoring server's main: importing the
//     package is all a program needs;
//   - a replica of a Go model: the same scoring server in this process (the
//     handler is code of this process), on the pod's address;
//   - the front-end (kube.DefaultFrontEndImage): cmd/aksml-fe's program
//     (fe.Run) as a child process the same way
//     (AKSML_LOCAL_CONTAINER=aksml-fe), with the cluster's kubeconfig and
//     --replica-address-prefix mapping pod IPs to their loopback addresses;
//     when Options.Clock is given, in this process instead, so token expiry
//     follows that clock;
//   - any other image: ErrImagePull, then ImagePullBackOff, naming the
//     image.
//
// The nodes run readiness and liveness probes (HTTP GET and TCP socket) with
// the pod's period, timeout and thresholds — until a container is first
// ready its readiness probe runs every StartupProbeInterval so a replica
// serves as soon as it answers — restart a container that exits or fails
// liveness with the kubelet's exponential back-off (CrashLoopBackOff,
// restart counts, the last termination's exit code and message), keep each
// container's log of this run and the previous one for the kubelet API
// (kubectl logs, the driver's ServiceLogs), and on deletion report the pod
// not ready, keep it serving for DrainDelay, then stop it.
//
// # Front-end
//
// InstallFrontEnd's Deployment runs as pods as on AKS; the cluster's load
// balancer, a TCP proxy on 127.0.0.1 (Options.FrontEndAddr), spreads
// connections over the ready ones and is written into the azureml-fe
// Service's status, as the cloud controller writes a public IP. It has a
// second listener (Options.FrontEndTLSAddr, Cluster.ScoringTLSAddress) for
// the Service's port 443, passed through to the pods' HTTPS port. Scoring
// URIs start with Cluster.ScoringBaseURL; once SetTLS gives a certificate,
// with https://CNAME:PORT (PORT the TLS listener's), and plain HTTP is
// redirected there. CNAME is in no DNS: clients dial ScoringTLSAddress
// (ClusterStatus.ScoringAddress; driver.Transport does).
//
// The cluster lives in the process that started it: Close (or the driver's
// Delete or Detach) stops every pod and process and removes its files.
//
// # Known limit
//
// On a machine whose CPUs are saturated by other work (the module's other
// race-enabled tests running beside it on two cores), a rolling update under
// load has lost one request in a few hundred with a 502 ("Replica closed
// connection before replying"); alone, it loses none. The likeliest cause,
// an EndpointSlice the controller-manager updates after the deleted pod has
// drained and stopped, is gone: the front-end now drops a pod from its
// route as soon as the API server records the pod's deletion. Whether that
// was the whole cause is not yet shown (the other candidate is a liveness
// probe timing out under saturation and restarting a container).
package local
