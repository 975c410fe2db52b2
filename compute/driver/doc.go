// Package driver is the contract every aksml backend honours: the in-process
// simulator, the Kubernetes backend, and any backend a user writes.
//
// The portable packages (aml, compute, webservice, endpoint) validate input,
// fill defaults and wrap errors once, then call a driver with a resolved
// ServiceSpec. Drivers may therefore assume their input is valid. The
// conformance suite in compute/drivertest checks every driver against the
// contract written in the doc comments below.
//
// Error codes (package errcode) a driver returns:
//   - NotFound: the named service or cluster does not exist.
//   - AlreadyExists: Provision/Attach of a cluster name that is taken.
//   - InvalidArgument: a spec the backend cannot express (for example a GPU
//     count on a backend without GPU support).
//   - Unimplemented: the backend does not support the operation.
//   - Unavailable: the backend cannot be reached.
package driver
