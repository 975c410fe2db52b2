package otlpsink_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSimulatorDoesNotLinkOpenTelemetry checks with go list that the
// packages most programs link (the simulator, aml, scoring) do not reach
// the OpenTelemetry SDK: only importers of this package pay for it.
func TestSimulatorDoesNotLinkOpenTelemetry(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/aksml/aksml/simulator", "github.com/aksml/aksml/aml", "github.com/aksml/aksml/scoring").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "go.opentelemetry.io/") || p == "github.com/aksml/aksml/scoring/otlpsink" {
			t.Errorf("%s is in the import graph of simulator, aml or scoring", p)
		}
	}
}
