package drivertest

import (
	"context"
	"path"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
)

// SkipCases wraps h so that the suite's cases named in reasons (the
// subtest names of RunConformanceTests, such as "DeployHealthyAndScore")
// are skipped with the reason given: every case asks the harness for its
// cluster first, and the wrapper skips there. A backend runs the subset it
// can support and documents why the rest is left out:
//
//	drivertest.RunConformanceTests(t, drivertest.SkipCases(h, map[string]string{
//		"DeployHealthyAndScore": "scores through a running container",
//	}))
func SkipCases(h Harness, reasons map[string]string) Harness {
	return skipping{Harness: h, reasons: reasons}
}

// OnlyCases wraps h so that only the cases named in run reach it; every
// other case is skipped, with its reason from reasons when listed there.
// Unlike SkipCases, a case added to the suite later stays skipped for the
// backend until it is reviewed and added to run.
func OnlyCases(h Harness, run []string, reasons map[string]string) Harness {
	only := map[string]bool{}
	for _, n := range run {
		only[n] = true
	}
	return skipping{Harness: h, reasons: reasons, only: only}
}

type skipping struct {
	Harness
	reasons map[string]string
	only    map[string]bool // nil: every case not in reasons runs
}

func (s skipping) NewCluster(ctx context.Context, t *testing.T, shape driver.ClusterShape) driver.Cluster {
	t.Helper()
	name := path.Base(t.Name())
	if why, ok := s.reasons[name]; ok && !s.only[name] {
		t.Skipf("not run against this backend: %s", why)
	}
	if s.only != nil && !s.only[name] {
		t.Skipf("not among the cases this backend runs")
	}
	return s.Harness.NewCluster(ctx, t, shape)
}

func (s skipping) Advance(d time.Duration) bool { return s.Harness.Advance(d) }
