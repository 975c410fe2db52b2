package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the kernel for TestIntegrationNotebooks: the
// kernelspec it installs runs it with AKSML_KERNEL_MAIN=1, which makes it
// the kernel's main instead of running tests (no second build of the
// kernel).
func TestMain(m *testing.M) {
	if os.Getenv("AKSML_KERNEL_MAIN") == "1" {
		if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "aksml-kernel:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// executed is a notebook after jupyter nbconvert --execute.
type executed struct {
	Cells []struct {
		CellType string `json:"cell_type"`
		Source   any    `json:"source"`
		Outputs  []struct {
			OutputType string         `json:"output_type"`
			Name       string         `json:"name"`
			Text       any            `json:"text"`
			Data       map[string]any `json:"data"`
			Ename      string         `json:"ename"`
			Evalue     string         `json:"evalue"`
		} `json:"outputs"`
	} `json:"cells"`
}

// joined reads a notebook string field, stored as a string or a list of
// lines.
func joined(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		var b strings.Builder
		for _, s := range v {
			b.WriteString(fmt.Sprint(s))
		}
		return b.String()
	}
	return ""
}

// outputs returns, by MIME type ("stream" for stdout and stderr text), all
// the outputs of the notebook's code cells, and fails the test for every
// cell that errored.
func (nb *executed) outputs(t *testing.T, name string) map[string]string {
	all := map[string]string{}
	for i, c := range nb.Cells {
		if c.CellType != "code" {
			continue
		}
		for _, o := range c.Outputs {
			switch o.OutputType {
			case "error":
				t.Errorf("%s cell %d errored: %s: %s", name, i, o.Ename, o.Evalue)
			case "stream":
				all["stream"] += joined(o.Text)
				if o.Name == "stderr" {
					t.Logf("%s cell %d stderr: %s", name, i, joined(o.Text))
				}
			default:
				for mime, v := range o.Data {
					all[mime] += joined(v) + "\n"
				}
			}
		}
	}
	return all
}

// TestIntegrationNotebooks executes the example notebooks with Jupyter's
// own nbconvert against this kernel, as a user's Jupyter would, and checks
// what a user looks for in each.
func TestIntegrationNotebooks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Jupyter")
	}
	jupyter, err := exec.LookPath("jupyter")
	if err != nil {
		t.Skip("jupyter is not installed (scripts/install-deps installs Debian's jupyter-nbconvert and jupyter-client)")
	}
	if err := exec.Command(jupyter, "nbconvert", "--version").Run(); err != nil {
		t.Skipf("jupyter nbconvert does not run: %v (scripts/install-deps installs it)", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kdir := filepath.Join(dir, "share", "jupyter", "kernels", "aksml-go-test")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(kernelSpec{Argv: []string{self, "{connection_file}"}, DisplayName: "Go (aksml, test)",
		Language: "go", InterruptMode: "message", Env: map[string]string{"AKSML_KERNEL_MAIN": "1"}, Metadata: map[string]any{}})
	if err := os.WriteFile(filepath.Join(kdir, "kernel.json"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	nbDir, err := filepath.Abs("../../examples/notebooks")
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][]struct{ mime, want, what string }{
		"deploy-to-aks.ipynb": {
			{"stream", "service iris-svc: Healthy", "WaitForDeployment's progress ending Healthy"},
			{"stream", "state: Healthy", "the service's state"},
			{"stream", `predictions: [{"class": "setosa"`, "the predictions"},
			{"stream", "token type Bearer", "an access token"},
			{"stream", `with a token: {"echo": {"hello": "token"}}`, "scoring with the token"},
			{"text/html", `<table class="aksml"><caption>Models</caption>`, "the model table"},
			{"text/html", `<caption>Service iris-svc</caption>`, "the service table"},
			{"text/html", `<span style="color:#1a7f37;font-weight:bold">Healthy</span>`, "Healthy in the service table"},
			{"text/html", `<pre class="aksml-logs">`, "the service logs"},
			{"text/plain", "loaded multinomial logistic regression", "init() output in the logs"},
		},
		"controlled-rollout.ipynb": {
			{"image/svg+xml", "<svg", "the traffic split chart"},
			{"text/plain", "traffic split of churn: stable 90% canary 10%", "the 10 % split"},
			{"text/plain", "traffic split of churn: stable 50% canary 50%", "the 50 % split"},
			{"text/plain", "traffic split of churn: stable 0% canary 100%", "the 100 % split"},
			{"text/html", "Requests by version", "the per-version request chart"},
			{"text/html", "Latency of 200 answers", "the latency histogram"},
			{"text/plain", "canary=200", "every request on the canary at 100 %"},
			{"stream", "canary answered 200 of 200 requests", "the final count"},
			{"text/html", "<caption>Endpoint churn", "the endpoint table"},
			{"stream", `"model":"canary"`, "a score from the promoted canary"},
		},
	}
	for _, name := range []string{"deploy-to-aks.ipynb", "controlled-rollout.ipynb"} {
		out := t.TempDir()
		cmd := exec.Command(jupyter, "nbconvert", "--to", "notebook", "--execute",
			"--ExecutePreprocessor.kernel_name=aksml-go-test", "--ExecutePreprocessor.timeout=180",
			"--output-dir", out, filepath.Join(nbDir, name))
		cmd.Dir = nbDir
		cmd.Env = append(os.Environ(), "JUPYTER_PATH="+filepath.Join(dir, "share", "jupyter"),
			"JUPYTER_RUNTIME_DIR="+filepath.Join(dir, "runtime"))
		start := time.Now()
		combined, err := cmd.CombinedOutput()
		t.Logf("%s executed in %s", name, time.Since(start).Round(10*time.Millisecond))
		if err != nil {
			t.Errorf("jupyter nbconvert --execute %s: %v\n%s", name, err, combined)
			continue
		}
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		var nb executed
		if err := json.Unmarshal(data, &nb); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := nb.outputs(t, name)
		shown := map[string]bool{}
		for _, c := range checks[name] {
			if !strings.Contains(got[c.mime], c.want) {
				t.Errorf("%s: no %s (%q in %s output)", name, c.what, c.want, c.mime)
				if !shown[c.mime] && c.mime != "image/svg+xml" && c.mime != "text/html" {
					shown[c.mime] = true
					t.Logf("%s: its %s output:\n%s", name, c.mime, got[c.mime])
				}
			}
		}
	}
}
