// Package fe is the in-cluster front-end program of the kube backend, the
// counterpart of azureml-fe: one router (package frontend) for every
// service on the cluster. FrontEnd builds the router's table from watches
// of the services' Secrets, Deployments and EndpointSlices (the objects
// package kube applies) and autoscales versions through the Deployments'
// scale subresource; Serve runs it with a listener, tokens verified with
// the cluster's key (kube.TokenKey); Run is the whole program as
// cmd/aksml-fe runs it, flags included (ParseArgs).
//
// The kube driver never imports this package: it only applies the
// front-end's objects (kube.Cluster.InstallFrontEnd). The local cluster
// (kube/local) runs Run as a child process, as a pod would.
package fe
