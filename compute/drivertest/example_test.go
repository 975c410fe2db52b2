package drivertest_test

import (
	"context"
	"fmt"

	"github.com/aksml/aksml/compute/drivertest"
)

// Spec builds a one-version service spec running a Go handler, the unit of
// most conformance cases; Echo answers with its input and a tag.
func ExampleSpec() {
	spec := drivertest.Spec("echo", drivertest.Echo("v1"), 2)
	v := spec.Versions[0]
	fmt.Println(spec.Name, v.Scale.Replicas, v.Replica.CPU, v.Replica.MemoryGB, v.Replica.MaxConcurrentPerReplica)
	h := v.Replica.Handler()
	_ = h.Init(context.Background(), "")
	out, _ := h.Run(context.Background(), []byte(`{"x":1}`))
	fmt.Println(string(out))
	// Output:
	// echo 2 0.1 0.5 1
	// {"echo":{"x":1},"tag":"v1"}
}
