// Package pending gives a driver.Provider the asynchronous Provision the
// driver contract asks for: Start runs the slow part of a create (an ARM
// create and poll, a kind create) in a goroutine and returns at once a
// driver.Cluster that reports Creating, with the requested shape, until the
// work ends; then Succeeded, delegating every call to the cluster the work
// produced, or Failed with the work's error text.
//
// While the cluster is not Succeeded its service operations fail with
// errcode.FailedPrecondition ("cluster NAME is still Creating"). Detach and
// Delete stop the work (its context is canceled), wait for its goroutine
// to end, and then detach or delete what it produced; nothing keeps running
// after them.
package pending
