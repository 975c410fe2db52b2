// Package fe is the in-cluster front-end program of the kube backend, the
// counterpart of azureml-fe: one router (package frontend) for every
// service on the cluster. FrontEnd builds the router's table from watches
// of the services' Secrets, Deployments and EndpointSlices (the objects
// package kube applies) and autoscales versions through the Deployments'
// scale subresource (scale-up checked on every 100 ms sample, scale-down
// once per refresh period); Serve runs it with a listener, tokens verified with
// the cluster's key (kube.TokenKey); Run is the whole program as
// cmd/aksml-fe runs it, flags included (ParseArgs).
//
// HTTPS: Serve listens on ListenTLS (0.0.0.0:9443, the Service's port 443)
// from the start, and FrontEnd watches the Secret azuremlfessl
// (kube.FrontEndTLSSecret) in the token namespace. When it is added or
// updated, the router presents its certificate to new handshakes (an
// atomic swap: open connections keep theirs, the listener never restarts)
// and answers plain HTTP, /metrics aside, with 308 to
// https://CNAME[:HTTPSPort]; when it is deleted, handshakes fail and plain
// HTTP serves scoring again. A Secret that does not parse
// (kube.ParseTLSSecret) is logged as an error and ignored: the certificate
// served before stays.
//
// The kube driver never imports this package: it only applies the
// front-end's objects (kube.Cluster.InstallFrontEnd). The local cluster
// (kube/local) runs Run as a child process, as a pod would.
package fe
