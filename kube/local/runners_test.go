package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
)

// An entry script's process runs in an Azure-style app root: the working
// directory and AML_APP_ROOT hold the source directory under its own name
// (so ./<source_dir_name>/file opens) and the azureml-models folder; the app
// root is removed when the process ends, the source directory is not.
func TestScoreProcessRunsInAppRoot(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "pysrc")
	model := filepath.Join(base, "ws", "azureml-models", "iris", "1")
	files := map[string]string{
		filepath.Join(src, "extradata.json"): `{"extra": 42}`,
		filepath.Join(src, "score.py"): `import json, os

def init():
    global extra
    with open("./pysrc/extradata.json") as f:
        extra = json.load(f)["extra"]

def run(raw):
    return {"extra": extra, "cwd": os.getcwd(), "app_root": os.environ["AML_APP_ROOT"],
            "entries": sorted(os.listdir(".")), "model": open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl")).read()}
`,
		filepath.Join(model, "model.pkl"): "weights",
	}
	for p, content := range files {
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
	go func() {
		defer close(exited)
		runErr = r.run(runCtx, runContext{args: []string{"--address=127.0.0.1", "--port=" + port}, env: map[string]string{"AML_APP_ROOT": "/not/this/one"}, log: logs})
	}()
	defer func() {
		stop()
		<-exited
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	var body []byte
	for {
		resp, err := client.Post("http://"+addr+"/score", "application/json", strings.NewReader("{}"))
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("the scoring process exited: %v\n%s", runErr, strings.Join(logs.lines(50), "\n"))
		case <-ctx.Done():
			t.Fatalf("no answer from the scoring process: %v %s\n%s", err, body, strings.Join(logs.lines(50), "\n"))
		case <-time.After(50 * time.Millisecond):
		}
	}
	var got struct {
		Extra   int
		Cwd     string
		AppRoot string `json:"app_root"`
		Entries []string
		Model   string
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	if got.Extra != 42 || got.Cwd != got.AppRoot || got.Cwd == src || got.Model != "weights" ||
		fmt.Sprint(got.Entries) != "[azureml-models pysrc]" {
		t.Errorf("answer %+v; want extra 42 read through ./pysrc, the working directory = AML_APP_ROOT (not the source directory), entries [azureml-models pysrc], the model", got)
	}
	stop()
	<-exited
	if runErr != nil {
		t.Errorf("run after stop: %v", runErr)
	}
	if _, err := os.Stat(got.AppRoot); !os.IsNotExist(err) {
		t.Errorf("the app root %s outlived the process: %v", got.AppRoot, err)
	}
	if _, err := os.Stat(filepath.Join(src, "extradata.json")); err != nil {
		t.Errorf("the source directory lost its files: %v", err)
	}
}
