package drivertest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/scoring"
)

// LocalStorage is implemented by a Harness whose replicas write to this
// machine's directories (the simulator, a local cluster, a control plane
// whose pods run here): ReplicaTemplate.ModelDataDir is a directory the
// test can read. The DataCollectionAndTelemetry case needs it and is
// skipped on backends without it (a kind or AKS cluster, whose pods write
// to their own storage).
type LocalStorage interface {
	LocalStorage() bool
}

func (s skipping) LocalStorage() bool {
	ls, ok := s.Harness.(LocalStorage)
	return ok && ls.LocalStorage()
}

// Python is the interpreter the suite's entry-script case uses:
// $AKSML_TEST_PYTHON, else /usr/bin/python3.
func Python() string {
	if p := os.Getenv("AKSML_TEST_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

const captureScript = `import sys
from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("capmodel", designation="inputs", feature_names=["raw"])

def run(raw_data):
    dc.collect([raw_data])
    print("scored", raw_data)
    return "ok"
`

// testCapture deploys a score.py service with collect_model_data and
// enable_app_insights on and checks that a request's ModelDataCollector
// record is in v1's layout with the request's id as its correlation id,
// and that its telemetry (the request and what run() printed) carries the
// id the caller sent and the router's.
func testCapture(t *testing.T, h Harness) {
	if ls, ok := h.(LocalStorage); !ok || !ls.LocalStorage() {
		t.Skip("this backend's replicas write to their own storage (a kind or AKS pod), which the test cannot read")
	}
	if _, err := exec.LookPath(Python()); err != nil {
		t.Skipf("no Python interpreter (%s) to run score.py: %v", Python(), err)
	}
	ctx := testCtx(t)
	base := t.TempDir()
	src, ws := filepath.Join(base, "src"), filepath.Join(base, "ws")
	for _, d := range []string{src, ws} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "score.py"), []byte(captureScript), 0o644); err != nil {
		t.Fatal(err)
	}
	c := h.NewCluster(ctx, t, CPUShape)
	const name = "capture-svc"
	spec := Spec(name, nil, 1)
	r := &spec.Versions[0].Replica
	r.EntryScript, r.SourceDir, r.Interpreter = filepath.Join(src, "score.py"), src, Python()
	r.CollectModelData, r.AppInsights, r.ModelDataDir = true, true, ws
	st := deploy(ctx, t, c, spec)

	caller := fmt.Sprintf("conformance-caller-%d", time.Now().UnixNano())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.ScoringURI, strings.NewReader("row-1"))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("x-ms-client-request-id", caller)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	routerID := resp.Header.Get("x-ms-request-id")
	if resp.StatusCode != 200 || routerID == "" {
		t.Fatalf("score: %d, x-ms-request-id %q", resp.StatusCode, routerID)
	}

	// The records leave the replica in the background: wait for them.
	var rows []string
	var recs []scoring.TelemetryRecord
	for {
		rows = rows[:0]
		files, _ := filepath.Glob(filepath.Join(ws, "modeldata", "*", "*", "*", name, "capmodel", "*", "inputs", "*", "*", "*", "data.csv"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			rows = append(rows, strings.Split(strings.TrimSpace(string(b)), "\n")...)
		}
		recs, _ = scoring.ReadServiceTelemetry(ws, name)
		var req, print bool
		for _, r := range recs {
			req = req || r.Kind == scoring.TelemetryRequest && r.ClientRequestID == caller
			print = print || r.Kind == scoring.TelemetryPrint && r.ClientRequestID == caller
		}
		if len(rows) >= 2 && req && print {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("records not written: model data rows %q, telemetry %+v", rows, recs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if rows[0] != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id,raw" {
		t.Errorf("model data header %q", rows[0])
	}
	if f := strings.Split(rows[1], ","); len(f) != 3 || f[1] != routerID || f[2] != "row-1" {
		t.Errorf("model data row %q: want the correlation id %s (the request's) and row-1", rows[1], routerID)
	}
	for _, r := range recs {
		if r.ClientRequestID != caller {
			continue
		}
		if r.RequestID != routerID || r.Service != name || r.Replica == "" {
			t.Errorf("telemetry %+v: want request id %s, service %s and a replica", r, routerID, name)
		}
		switch r.Kind {
		case scoring.TelemetryRequest:
			if r.Status != 200 || r.Duration <= 0 || r.Version != name {
				t.Errorf("request telemetry %+v: want status 200, a duration, version %s", r, name)
			}
		case scoring.TelemetryPrint:
			if r.Message != "scored row-1" || r.Stream != "stdout" {
				t.Errorf("print telemetry %+v", r)
			}
		}
	}
}
