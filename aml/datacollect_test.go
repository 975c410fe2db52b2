package aml_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/webservice"
)

// A v1 score.py that collects its inputs and predictions writes them to the
// workspace in v1's layout when the service has collect_model_data on, and
// runs the same with it off, writing nothing.
func TestDeployCollectModelData(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	m := e.model(t, "best_model", "weights")
	src := t.TempDir()
	script := `import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("best_model", designation="inputs", feature_names=["a", "b"])
    prediction_dc = ModelDataCollector("best_model", designation="predictions", feature_names=["sum"])

def run(raw_data):
    data = json.loads(raw_data)["data"]
    inputs_dc.collect(data)
    result = [x + y for x, y in data]
    prediction_dc.collect([[r] for r in result])
    return result
`
	if err := os.WriteFile(filepath.Join(src, "score.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ic := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: src,
		Environment: &aml.Environment{Name: "debian", Python: aml.PythonSection{UserManagedDependencies: true, InterpreterPath: "/usr/bin/python3"}}}
	for _, on := range []bool{true, false} {
		name := "dc-off"
		if on {
			name = "dc-on"
		}
		svc, err := aml.Deploy(ctx, e.ws, name, []*aml.Model{m}, ic, webservice.DeployConfig{NumReplicas: 1, CollectModelData: on}, e.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.WaitForDeployment(ctx); err != nil {
			t.Fatal(err)
		}
		day := time.Now().UTC()
		for range 2 {
			out, err := svc.Run(ctx, `{"data": [[1, 2], [3, 4]]}`)
			if err != nil || string(out) != "[3, 7]" {
				t.Fatalf("%s: run: %s %v", name, out, err)
			}
		}
		// Deleting the service closes its replica, which writes what it
		// still holds.
		if err := svc.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(e.ws.Dir(), "modeldata", "default", "default", "default", name)
		if !on {
			if _, err := os.Stat(base); !os.IsNotExist(err) {
				t.Fatalf("collect_model_data off wrote %s (%v)", base, err)
			}
			continue
		}
		ver := filepath.Join(base, "best_model", strconv.Itoa(m.Version))
		date := filepath.Join(day.Format("2006"), day.Format("01"), day.Format("02"))
		in, err := os.ReadFile(filepath.Join(ver, "inputs", date, "data.csv"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(in)), "\n")
		if len(lines) != 5 || lines[0] != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id,a,b" || !strings.HasSuffix(lines[1], ",1,2") {
			t.Fatalf("inputs:\n%s", in)
		}
		pred, err := os.ReadFile(filepath.Join(ver, "predictions", date, "data.csv"))
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(pred)), ",7") {
			t.Fatalf("predictions: %s %v", pred, err)
		}
	}
}
