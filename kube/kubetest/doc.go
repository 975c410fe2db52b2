// Package kubetest ties a real Kubernetes control plane on loopback
// (package controlplane: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, the binaries scripts/kubebins builds from the Go module
// proxy, with nodes registered in-process through virtual-kubelet) to a
// test's lifetime, for the kube backend's TestIntegration* tests.
//
// Each Start picks a random 127.x.y.z address, so control planes of
// parallel tests and other programs on the machine never share ports; every
// process and node stops in t.Cleanup, and a failed test logs the tail of
// each component's log. Nodes start no containers: a pod bound to one
// reports the status its PodOutcome says (see controlplane.PodOutcome).
//
//	cp := kubetest.Start(t, &kubetest.Options{Nodes: kubetest.NodesForShape(shape)})
//	client := cp.Client // or cp.Kubeconfig
//
// Start fails the test, naming scripts/kubebins, when the binaries are
// missing; it never skips. Programs that need a control plane outside a
// test (the local cluster of package kube/local) use package controlplane
// directly.
package kubetest
