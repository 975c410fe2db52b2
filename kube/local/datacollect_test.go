package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/internal/treetest"
)

// The local cluster's scoring process collects model data when its pod has
// AML_MODEL_DC_STORAGE_ENABLED=true and AKSML_MODEL_DATA_DIR: the records
// are in v1's layout under that directory once the process has stopped.
func TestScoreProcessCollectsModelData(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "pysrc")
	model := filepath.Join(base, "ws", "azureml-models", "iris", "1")
	treetest.Write(t, base, map[string]string{
		"pysrc/score.py": `from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("iris", designation="inputs", feature_names=["raw"])

def run(raw):
    dc.collect([raw])
    return "ok"
`,
		"ws/azureml-models/iris/1/model.pkl": "weights",
	}, nil)
	wsDir := filepath.Join(base, "ws")
	s := startScore(t, driver.ReplicaTemplate{EntryScript: filepath.Join(src, "score.py"), SourceDir: src, ModelDir: model, Interpreter: "/usr/bin/python3"},
		[]string{"--service_name=svc"}, map[string]string{"AML_MODEL_DC_STORAGE_ENABLED": "true", "AKSML_MODEL_DATA_DIR": wsDir})
	for range 3 {
		s.post("text/plain", "row")
	}
	day := time.Now().UTC()
	if err := s.stop(); err != nil {
		t.Fatalf("run after stop: %v", err)
	}
	p := filepath.Join(wsDir, "modeldata", "default", "default", "default", "svc", "iris", "1", "inputs",
		day.Format("2006"), day.Format("01"), day.Format("02"), "data.csv")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(s.logs.lines(50), "\n"))
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || lines[0] != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id,raw" || !strings.HasSuffix(lines[3], ",row") {
		t.Fatalf("%s:\n%s", p, b)
	}
}
