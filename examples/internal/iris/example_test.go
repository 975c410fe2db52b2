package iris_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aksml/aksml/examples/internal/iris"
	"github.com/aksml/aksml/simulator"
)

// Run on the in-process simulator, as examples/quickstart does; the lines
// that do not change from run to run (digests, ports and probabilities
// do) are printed.
func ExampleRun() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sim := simulator.New(nil)
	defer sim.Close()
	var out bytes.Buffer
	if err := iris.Run(ctx, &out, "", sim); err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "service ") || strings.Contains(line, "HTTP") || strings.Contains(line, "refused") {
			fmt.Println(line)
		}
	}
	// Output:
	// service iris-svc: Healthy
	// old primary key after regen_key: HTTP 401
	// new primary key: HTTP 200
	// deleting iris-classifier:1 while deployed: refused
}
