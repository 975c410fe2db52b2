package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shell runs the built aksml binary as a user at a shell would, in a
// directory holding the walk-through's files.
type shell struct {
	t   *testing.T
	bin string
	dir string
	ws  string
}

func (s *shell) run(args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "AKSML_WORKSPACE="+s.ws)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

func (s *shell) ok(args ...string) string {
	s.t.Helper()
	out, errs, code := s.run(args...)
	if code != 0 {
		s.t.Fatalf("aksml %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), code, errs, out)
	}
	return out
}

// value runs a command with -o tsv --query q and returns its one line.
func (s *shell) value(q string, args ...string) string {
	s.t.Helper()
	return strings.TrimSpace(s.ok(append(args, "--query", q, "-o", "tsv")...))
}

// post scores body at uri with an optional bearer credential.
func post(t *testing.T, uri, cred, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", uri, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationWalkThrough builds aksml and runs the deployment guide's
// walk-through at a shell: a local AKS that outlives each command, the
// seed's exact deploy line, keys, tokens, an endpoint moving traffic, logs,
// and a restart of the cluster that brings the service back.
func TestIntegrationWalkThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kubernetes control plane")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "aksml")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sh := &shell{t: t, bin: bin, dir: filepath.Join(tmp, "project"), ws: filepath.Join(tmp, "ws")}
	copyTree(t, "testdata", sh.dir)

	sh.ok("workspace", "create")
	began := time.Now()
	sh.ok("local", "start")
	t.Cleanup(func() {
		if t.Failed() {
			out, _, _ := sh.run("local", "logs", "--tail", "40")
			t.Logf("local cluster log:\n%s", out)
		}
		sh.run("local", "stop")
	})
	coldStart := time.Since(began)
	if got := sh.value("state", "local", "status"); got != "Running" {
		t.Fatalf("local status: %q, want Running", got)
	}
	sh.ok("computetarget", "create", "aks", "-n", "myaks", "--local")
	if got := sh.value("provisioningState", "computetarget", "show", "-n", "myaks"); got != "Succeeded" {
		t.Fatalf("computetarget show: provisioningState %q", got)
	}
	t.Logf("local start to a usable target (cold): %s", time.Since(began))

	sh.ok("model", "register", "-n", "mymodel", "-p", "model/model.json")
	sh.ok("model", "register", "-n", "mymodel", "-p", "model3/model.json")
	began = time.Now()
	sh.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "inferenceconfig.json", "-dc", "deploymentconfig.json")
	t.Logf("model deploy to Healthy: %s", time.Since(began))
	if got := sh.value("state", "service", "show", "-n", "myservice"); got != "Healthy" {
		t.Fatalf("service show: state %q, want Healthy", got)
	}
	var answer struct {
		Result []float64 `json:"result"`
		Scale  float64   `json:"scale"`
	}
	if err := json.Unmarshal([]byte(sh.ok("service", "run", "-n", "myservice", "-d", `{"data": [1, 2]}`)), &answer); err != nil || answer.Scale != 2 || len(answer.Result) != 2 || answer.Result[1] != 4 {
		t.Fatalf("service run: %+v (%v), want result [2 4]", answer, err)
	}

	// Keys: the old primary key is refused once regen-key returns.
	uri := sh.value("scoringUri", "service", "show", "-n", "myservice")
	oldKey := sh.value("primaryKey", "service", "get-keys", "-n", "myservice")
	if code, body := post(t, uri, oldKey, `{"data": [1]}`); code != 200 {
		t.Fatalf("scoring with the primary key: %d %s", code, body)
	}
	newKey := sh.value("primaryKey", "service", "regen-key", "-n", "myservice", "--key", "primary")
	if newKey == oldKey || newKey == "" {
		t.Fatalf("regen-key: primary key %q unchanged", newKey)
	}
	if code, _ := post(t, uri, oldKey, `{"data": [1]}`); code != 401 {
		t.Errorf("the old key after regen-key: %d, want 401", code)
	}
	if code, body := post(t, uri, newKey, `{"data": [1]}`); code != 200 {
		t.Errorf("the new key: %d %s", code, body)
	}

	// A token-auth service and its access token.
	sh.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "tokensvc", "-ic", "inferenceconfig.json", "-dc", "deploymentconfig-token.json")
	token := sh.value("accessToken", "service", "get-access-token", "-n", "tokensvc")
	turi := sh.value("scoringUri", "service", "show", "-n", "tokensvc")
	if code, _ := post(t, turi, "", `{"data": [1]}`); code != 401 {
		t.Errorf("token service without a token: %d, want 401", code)
	}
	if code, body := post(t, turi, token, `{"data": [1]}`); code != 200 {
		t.Errorf("token service with get-access-token's token: %d %s", code, body)
	}

	// An endpoint: traffic moves from v1 (scale 2) to v2 (scale 3).
	sh.ok("endpoint", "realtime", "create", "-n", "myep", "-ct", "myaks", "-m", "mymodel:1", "-ic", "inferenceconfig.json",
		"-dc", "epconfig-noauth.json", "--version-name", "ver1", "--traffic-percentile", "100")
	sh.ok("endpoint", "realtime", "create-version", "-n", "myep", "--version-name", "ver2", "-m", "mymodel:2", "-ic", "inferenceconfig.json",
		"-dc", "epconfig-noauth.json", "--traffic-percentile", "0")
	euri := sh.value("scoringUri", "endpoint", "realtime", "show", "-n", "myep")
	scales := func() map[float64]int {
		seen := map[float64]int{}
		for range 20 {
			code, body := post(t, euri, "", `{"data": [1]}`)
			var a struct{ Scale float64 }
			if code != 200 || json.Unmarshal([]byte(body), &a) != nil {
				t.Fatalf("endpoint scoring: %d %s", code, body)
			}
			seen[a.Scale]++
		}
		return seen
	}
	if seen := scales(); seen[2] != 20 {
		t.Errorf("v1 at 100%%: answers by scale %v, want all from v1 (2)", seen)
	}
	sh.ok("endpoint", "realtime", "update-version", "-n", "myep", "--version-name", "ver1", "--traffic-percentile", "0")
	sh.ok("endpoint", "realtime", "update-version", "-n", "myep", "--version-name", "ver2", "--traffic-percentile", "100")
	if seen := scales(); seen[3] != 20 {
		t.Errorf("v2 at 100%%: answers by scale %v, want all from v2 (3)", seen)
	}

	if logs := sh.ok("service", "get-logs", "-n", "myservice", "--init"); !strings.Contains(logs, "init: scale 2") {
		t.Errorf("get-logs --init lacks init()'s output:\n%s", logs)
	}

	// CLI latency against the operation itself.
	measure := func(n int, f func()) time.Duration {
		began := time.Now()
		for range n {
			f()
		}
		return time.Since(began) / time.Duration(n)
	}
	direct := measure(10, func() { post(t, uri, newKey, `{"data": [1]}`) })
	viaCLI := measure(5, func() { sh.ok("service", "run", "-n", "myservice", "-d", `{"data": [1]}`) })
	list := measure(5, func() { sh.ok("service", "list") })
	t.Logf("latency: service run %s by the CLI vs %s by HTTP; service list %s", viaCLI, direct, list)

	// Restart: the service comes back and answers at the same URI.
	sh.ok("local", "stop")
	if _, _, code := sh.run("service", "run", "-n", "myservice", "-d", `{"data": [1]}`); code == 0 {
		t.Errorf("service run answered with the local cluster stopped")
	}
	began = time.Now()
	sh.ok("local", "start")
	t.Logf("local start (warm): %s", time.Since(began))
	for {
		code, _ := post(t, uri, newKey, `{"data": [1]}`)
		if code == 200 {
			break
		}
		if time.Since(began) > 90*time.Second {
			t.Fatalf("after local stop and start the service never answered (last status %d)", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("restart: local start to the first 200 again: %s (cold start was %s)", time.Since(began), coldStart)
	if got := sh.value("state", "service", "show", "-n", "myservice"); got != "Healthy" {
		t.Errorf("service show after restart: %q", got)
	}
	if !strings.Contains(sh.ok("service", "run", "-n", "myservice", "-d", `{"data": [5]}`), "10") {
		t.Errorf("service run after restart: wrong answer")
	}

	sh.ok("service", "delete", "-n", "myservice")
	if _, _, code := sh.run("service", "show", "-n", "myservice"); code != exitNotFound {
		t.Errorf("service show after delete: exit %d, want %d", code, exitNotFound)
	}
	sh.ok("local", "stop")
	if got := sh.value("state", "local", "status"); got != "Stopped" {
		t.Errorf("local status after stop: %q", got)
	}
}
