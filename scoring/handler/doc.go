// Package handler defines the Go scoring handler: the interface a
// Go-native model implements and the constructor type a deployment
// carries. It is the only part of the replica server that the driver
// contract (compute/driver) and the backends' specs need, so it lives
// apart from package scoring, which implements the server and the
// Python host; scoring.Handler and scoring.NewHandler are the same types.
package handler
