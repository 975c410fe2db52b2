package local

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
)

// The local cluster's scoring process collects model data when its pod has
// AML_MODEL_DC_STORAGE_ENABLED=true and AKSML_MODEL_DATA_DIR: the records
// are in v1's layout under that directory once the process has stopped.
func TestScoreProcessCollectsModelData(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "pysrc")
	model := filepath.Join(base, "ws", "azureml-models", "iris", "1")
	for p, content := range map[string]string{
		filepath.Join(src, "score.py"): `from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("iris", designation="inputs", feature_names=["raw"])

def run(raw):
    dc.collect([raw])
    return "ok"
`,
		filepath.Join(model, "model.pkl"): "weights",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)

	r := scoreProcess(driver.ReplicaTemplate{EntryScript: filepath.Join(src, "score.py"), SourceDir: src, ModelDir: model, Interpreter: "/usr/bin/python3"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	logs := newLogRing()
	exited := make(chan struct{})
	var runErr error
	wsDir := filepath.Join(base, "ws")
	go func() {
		defer close(exited)
		runErr = r.run(runCtx, runContext{args: []string{"--address=127.0.0.1", "--port=" + port, "--service_name=svc"},
			env: map[string]string{"AML_MODEL_DC_STORAGE_ENABLED": "true", "AKSML_MODEL_DATA_DIR": wsDir}, log: logs})
	}()
	defer func() {
		stop()
		<-exited
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	sent := 0
	for sent < 3 {
		resp, err := client.Post("http://"+addr+"/score", "text/plain", strings.NewReader("row"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				sent++
				continue
			}
		}
		select {
		case <-exited:
			t.Fatalf("the scoring process exited: %v\n%s", runErr, strings.Join(logs.lines(50), "\n"))
		case <-ctx.Done():
			t.Fatalf("no answer from the scoring process: %v\n%s", err, strings.Join(logs.lines(50), "\n"))
		case <-time.After(50 * time.Millisecond):
		}
	}
	day := time.Now().UTC()
	stop()
	<-exited
	if runErr != nil {
		t.Fatalf("run after stop: %v", runErr)
	}
	p := filepath.Join(wsDir, "modeldata", "default", "default", "default", "svc", "iris", "1", "inputs",
		day.Format("2006"), day.Format("01"), day.Format("02"), "data.csv")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(logs.lines(50), "\n"))
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || lines[0] != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id,raw" || !strings.HasSuffix(lines[3], ",row") {
		t.Fatalf("%s:\n%s", p, b)
	}
}
