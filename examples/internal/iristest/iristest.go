// Package iristest checks the output of the examples' iris job (package
// iris), for the tests of examples/quickstart and examples/localcluster.
package iristest

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/examples/internal/iris"
)

// Check runs iris.Run on provider and checks the eight lines it prints.
func Check(t testing.TB, provider driver.Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := iris.Run(ctx, &out, t.TempDir(), provider); err != nil {
		t.Fatalf("quickstart: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`registered model iris-classifier:1 \(sha256:[0-9a-f]{64}\)`),
		regexp.MustCompile(`Provisioning operation finished, operation "Succeeded"`),
		regexp.MustCompile(`service iris-svc: Healthy`),
		regexp.MustCompile(`scoring URI: http://127\.0\.0\.1:\d+/api/v1/service/iris-svc/score`),
		regexp.MustCompile(`predictions: \[\{"class": "setosa", "probability": 0\.98\d*\}, \{"class": "virginica", "probability": 0\.9\d*\}, \{"class": "versicolor", "probability": 0\.8\d*\}\]`),
		regexp.MustCompile(`old primary key after regen_key: HTTP 401`),
		regexp.MustCompile(`new primary key: HTTP 200`),
		regexp.MustCompile(`deleting iris-classifier:1 while deployed: refused`),
	} {
		if !want.MatchString(got) {
			t.Errorf("output lacks %s\noutput:\n%s", want, got)
		}
	}
	if strings.Count(got, "\n") != 8 {
		t.Errorf("output has %d lines, want 8:\n%s", strings.Count(got, "\n"), got)
	}
}
