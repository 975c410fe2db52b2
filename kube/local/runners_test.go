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
	"github.com/aksml/aksml/internal/treetest"
)

// scoreRun is an entry script's scoring process of the local cluster,
// started by a test.
type scoreRun struct {
	t      *testing.T
	addr   string
	ctx    context.Context
	logs   *logRing
	exited chan struct{}
	err    error
	cancel context.CancelFunc
}

// startScore runs the scoring process of tmpl on a free loopback port,
// with args and env added to what the runner gives it. The test's cleanup
// stops it.
func startScore(t *testing.T, tmpl driver.ReplicaTemplate, args []string, env map[string]string) *scoreRun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	runCtx, stop := context.WithCancel(ctx)
	s := &scoreRun{t: t, addr: addr, ctx: ctx, logs: newLogRing(), exited: make(chan struct{}),
		cancel: func() { stop(); cancel() }}
	r := scoreProcess(tmpl)
	go func() {
		defer close(s.exited)
		s.err = r.run(runCtx, runContext{args: append([]string{"--address=127.0.0.1", "--port=" + port}, args...), env: env, log: s.logs})
	}()
	t.Cleanup(func() { _ = s.stop() })
	return s
}

// post sends body until the process answers 200 and returns the answer,
// failing the test if the process exits or does not answer in time.
func (s *scoreRun) post(contentType, body string) []byte {
	s.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Post("http://"+s.addr+"/score", contentType, strings.NewReader(body))
		var answer []byte
		if err == nil {
			answer, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return answer
			}
		}
		select {
		case <-s.exited:
			s.t.Fatalf("the scoring process exited: %v\n%s", s.err, strings.Join(s.logs.lines(50), "\n"))
		case <-s.ctx.Done():
			s.t.Fatalf("no answer from the scoring process: %v %s\n%s", err, answer, strings.Join(s.logs.lines(50), "\n"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the process and returns what its run returned.
func (s *scoreRun) stop() error {
	s.cancel()
	<-s.exited
	return s.err
}

// An entry script's process runs in an Azure-style app root: the working
// directory and AML_APP_ROOT hold the source directory under its own name
// (so ./<source_dir_name>/file opens) and the azureml-models folder; the app
// root is removed when the process ends, the source directory is not.
func TestScoreProcessRunsInAppRoot(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "pysrc")
	model := filepath.Join(base, "ws", "azureml-models", "iris", "1")
	treetest.Write(t, base, map[string]string{
		"pysrc/extradata.json": `{"extra": 42}`,
		"pysrc/score.py": `import json, os

def init():
    global extra
    with open("./pysrc/extradata.json") as f:
        extra = json.load(f)["extra"]

def run(raw):
    return {"extra": extra, "cwd": os.getcwd(), "app_root": os.environ["AML_APP_ROOT"],
            "entries": sorted(os.listdir(".")), "model": open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl")).read()}
`,
		"ws/azureml-models/iris/1/model.pkl": "weights",
	}, nil)

	s := startScore(t, driver.ReplicaTemplate{EntryScript: filepath.Join(src, "score.py"), SourceDir: src, ModelDir: model, Interpreter: "/usr/bin/python3"},
		nil, map[string]string{"AML_APP_ROOT": "/not/this/one"})
	body := s.post("application/json", "{}")
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
	if err := s.stop(); err != nil {
		t.Errorf("run after stop: %v", err)
	}
	if _, err := os.Stat(got.AppRoot); !os.IsNotExist(err) {
		t.Errorf("the app root %s outlived the process: %v", got.AppRoot, err)
	}
	if _, err := os.Stat(filepath.Join(src, "extradata.json")); err != nil {
		t.Errorf("the source directory lost its files: %v", err)
	}
}
