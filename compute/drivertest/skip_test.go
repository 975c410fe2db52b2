package drivertest_test

import (
	"context"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
)

// recording notes which cases reach it, then skips them.
type recording struct {
	mu      sync.Mutex
	reached map[string]bool
}

func (r *recording) NewCluster(ctx context.Context, t *testing.T, shape driver.ClusterShape) driver.Cluster {
	r.mu.Lock()
	r.reached[path.Base(t.Name())] = true
	r.mu.Unlock()
	t.SkipNow()
	return nil
}

func (r *recording) Advance(time.Duration) bool { return false }

// TestSkipCases checks that SkipCases keeps the named cases from the
// harness and lets the others through.
func TestSkipCases(t *testing.T) {
	r := &recording{reached: map[string]bool{}}
	t.Run("suite", func(t *testing.T) {
		drivertest.RunConformanceTests(t, drivertest.SkipCases(r, map[string]string{
			"NotFound": "testing SkipCases", "DeployHealthyAndScore": "testing SkipCases",
		}))
	})
	if r.reached["NotFound"] || r.reached["DeployHealthyAndScore"] {
		t.Errorf("skipped cases reached the harness: %v", r.reached)
	}
	if !r.reached["ReapplyUnchanged"] || !r.reached["GPUOnCPUClusterIsUnschedulable"] {
		t.Errorf("cases not named were skipped: reached only %v", r.reached)
	}
}

// TestOnlyCases checks that OnlyCases lets exactly the named cases through.
func TestOnlyCases(t *testing.T) {
	r := &recording{reached: map[string]bool{}}
	t.Run("suite", func(t *testing.T) {
		drivertest.RunConformanceTests(t, drivertest.OnlyCases(r, []string{"NotFound", "ScaleFixedReplicas"}, map[string]string{"KeyAuth": "testing OnlyCases"}))
	})
	if len(r.reached) != 2 || !r.reached["NotFound"] || !r.reached["ScaleFixedReplicas"] {
		t.Errorf("reached %v, want NotFound and ScaleFixedReplicas only", r.reached)
	}
}
