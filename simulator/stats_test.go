package simulator_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
)

// ReplicaStats gives a replica's data collection and telemetry counts.
func TestReplicaStats(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "score.py"), []byte(`from azureml.monitoring import ModelDataCollector
def init():
    global dc
    dc = ModelDataCollector("m", designation="inputs")
def run(raw):
    dc.collect([raw])
    print("hi")
    return "ok"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sim := simulator.New(nil)
	defer sim.Close()
	c, err := sim.Provision(ctx, "stats", drivertest.CPUShape)
	if err != nil {
		t.Fatal(err)
	}
	spec := drivertest.Spec("stats-svc", nil, 1)
	r := &spec.Versions[0].Replica
	r.EntryScript, r.SourceDir, r.Interpreter = filepath.Join(base, "score.py"), base, drivertest.Python()
	r.CollectModelData, r.AppInsights, r.ModelDataDir = true, true, base
	if err := c.ApplyService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	st := drivertest.WaitFor(ctx, t, c, "stats-svc", func(s *driver.ServiceStatus) bool { return s.State == driver.Healthy })
	for range 3 {
		resp, err := http.Post(st.ScoringURI, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	sc := c.(*simulator.Cluster)
	reps, err := sc.Replicas("stats-svc")
	if err != nil || len(reps) != 1 {
		t.Fatalf("replicas %v, %v", reps, err)
	}
	want := scoring.Stats{DataCollection: scoring.DataCollectionStats{Collected: 3, Written: 3},
		Telemetry: scoring.TelemetryStats{Recorded: 6, Sent: 6}}
	for {
		got, err := sc.ReplicaStats(reps[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stats %+v, want %+v", got, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := sc.ReplicaStats("nope"); err == nil {
		t.Fatal("ReplicaStats of an unknown replica succeeded")
	}
}
