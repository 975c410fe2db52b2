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
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

// shell runs the aksml binary as a person at a shell would, against one
// workspace (AKSML_WORKSPACE).
type shell struct {
	t   *testing.T
	bin string
	ws  string
}

// exec runs one command line and returns its stdout, stderr, exit code
// and wall time.
func (s *shell) exec(args ...string) (string, string, int, time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	// A race-built binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), "AKSML_WORKSPACE="+s.ws, "GORACE=atexit_sleep_ms=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	began := time.Now()
	err := cmd.Run()
	took := time.Since(began)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			s.t.Fatalf("aksml %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code, took
}

// ok runs a command that must succeed and returns its stdout.
func (s *shell) ok(args ...string) string {
	s.t.Helper()
	out, errs, code, _ := s.exec(args...)
	if code != 0 {
		s.t.Fatalf("aksml %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), code, errs, out)
	}
	return out
}

// json runs a command that must succeed and decodes its JSON output.
func (s *shell) json(v any, args ...string) {
	s.t.Helper()
	out := s.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		s.t.Fatalf("aksml %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// buildCLI builds cmd/aksml into a temporary directory, with the race
// detector as the test itself was built, so the build reuses its
// compiled packages.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "aksml")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/aksml: %v\n%s", err, out)
	}
	return bin
}

// post sends body to a scoring URI with an Authorization header (none
// when auth is empty) and returns the status and the answer.
func post(t *testing.T, uri, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", uri, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestIntegrationWalkthrough is the walk-through of the deployment guide
// at a shell, on the workspace's local AKS (a real control plane that
// outlives each command): local start, a compute target on it, the
// guide's exact `model deploy` line, show, run, keys, tokens, an
// endpoint whose traffic moves between versions, logs, a restart of the
// cluster after which the service answers again, and delete.
func TestIntegrationWalkthrough(t *testing.T) {
	sh := &shell{t: t, bin: buildCLI(t), ws: filepath.Join(t.TempDir(), "ws")}
	sh.ok("workspace", "create")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			sh.exec("local", "stop")
		}
	})

	_, _, code, coldStart := sh.exec("local", "start")
	if code != 0 {
		t.Fatalf("local start: exit %d\n%s", code, sh.ok("local", "logs", "--tail", "40"))
	}
	var st struct{ State, Kubeconfig, ScoringBaseURL string }
	sh.json(&st, "local", "status")
	if st.State != "Running" || st.ScoringBaseURL == "" {
		t.Fatalf("local status: %+v", st)
	}
	began := time.Now()
	sh.ok("computetarget", "create", "aks", "-n", "myaks", "--local")
	targetReady := time.Since(began)
	var target struct{ Name, ProvisioningState string }
	sh.json(&target, "computetarget", "show", "-n", "myaks")
	if target.ProvisioningState != "Succeeded" {
		t.Errorf("computetarget show: %+v, want Succeeded", target)
	}

	sh.ok("model", "register", "-n", "mymodel", "-p", "testdata/model/model.json")
	sh.ok("model", "register", "-n", "mymodel", "-p", "testdata/model3/model.json")

	// The guide's line, exactly as az ml spells it.
	sh.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig.json")
	var svc struct {
		State      string `json:"state"`
		ScoringURI string `json:"scoringUri"`
	}
	sh.json(&svc, "service", "show", "-n", "myservice")
	if svc.State != "Healthy" || !strings.HasPrefix(svc.ScoringURI, st.ScoringBaseURL) {
		t.Fatalf("service show: %+v, want Healthy at %s", svc, st.ScoringBaseURL)
	}

	var answer struct {
		Result []float64
		Scale  float64
	}
	sh.json(&answer, "service", "run", "-n", "myservice", "-d", `{"data": [1, 2.5]}`)
	if !slices.Equal(answer.Result, []float64{2, 5}) {
		t.Errorf("service run: %+v, want [2 5]", answer)
	}

	// Keys: the old primary key is refused once it is regenerated.
	var keys, newKeys struct{ PrimaryKey, SecondaryKey string }
	sh.json(&keys, "service", "get-keys", "-n", "myservice")
	if code, body := post(t, svc.ScoringURI, keys.PrimaryKey, `{"data": [1]}`); code != http.StatusOK {
		t.Errorf("scoring with the primary key: %d %s", code, body)
	}
	sh.json(&newKeys, "service", "regen-key", "-n", "myservice", "--key", "primary")
	if newKeys.PrimaryKey == keys.PrimaryKey || newKeys.SecondaryKey != keys.SecondaryKey {
		t.Errorf("regen-key primary: %+v after %+v", newKeys, keys)
	}
	if code, _ := post(t, svc.ScoringURI, keys.PrimaryKey, `{"data": [1]}`); code != http.StatusUnauthorized {
		t.Errorf("the old primary key after regen-key: %d, want 401", code)
	}
	if code, body := post(t, svc.ScoringURI, newKeys.PrimaryKey, `{"data": [1]}`); code != http.StatusOK {
		t.Errorf("the new primary key: %d %s", code, body)
	}

	// A token-auth service and its access token.
	sh.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "tokensvc", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig-token.json")
	var tok struct{ AccessToken, TokenType string }
	sh.json(&tok, "service", "get-access-token", "-n", "tokensvc")
	var tokURI string
	sh.json(&tokURI, "service", "show", "-n", "tokensvc", "--query", "scoringUri")
	if code, body := post(t, tokURI, tok.AccessToken, `{"data": [2]}`); code != http.StatusOK || !strings.Contains(body, "4") {
		t.Errorf("scoring with the access token: %d %s", code, body)
	}
	if code, _ := post(t, tokURI, "", `{"data": [2]}`); code != http.StatusUnauthorized {
		t.Errorf("scoring the token-auth service without a token: %d, want 401", code)
	}

	// An endpoint: version 2 (scale 3) takes traffic when told to.
	sh.ok("endpoint", "realtime", "create", "-n", "myep", "-ct", "myaks", "-m", "mymodel:1",
		"-ic", "testdata/inferenceconfig.json", "-dc", "testdata/epconfig-noauth.json", "--version-name", "ver1", "--traffic-percentile", "100")
	sh.ok("endpoint", "realtime", "create-version", "-n", "myep", "--version-name", "ver2", "-m", "mymodel:2",
		"-ic", "testdata/inferenceconfig.json", "-dc", "testdata/epconfig-noauth.json", "--traffic-percentile", "0")
	var epURI string
	sh.json(&epURI, "endpoint", "realtime", "show", "-n", "myep", "--query", "scoringUri")
	scales := func(n int) map[float64]int {
		got := map[float64]int{}
		for range n {
			code, body := post(t, epURI, "", `{"data": [1]}`)
			if code != http.StatusOK {
				t.Fatalf("endpoint scoring: %d %s", code, body)
			}
			var a struct{ Scale float64 }
			if err := json.Unmarshal([]byte(body), &a); err != nil {
				t.Fatalf("endpoint answer %q: %v", body, err)
			}
			got[a.Scale]++
		}
		return got
	}
	if got := scales(20); got[3] != 0 || got[2] != 20 {
		t.Errorf("ver2 at 0 %%: answers by scale %v, want all from ver1 (scale 2)", got)
	}
	sh.ok("endpoint", "realtime", "update-version", "-n", "myep", "--version-name", "ver1", "--traffic-percentile", "0")
	sh.ok("endpoint", "realtime", "update-version", "-n", "myep", "--version-name", "ver2", "--traffic-percentile", "100", "--is-default")
	if got := scales(20); got[2] != 0 || got[3] != 20 {
		t.Errorf("ver2 at 100 %%: answers by scale %v, want all from ver2 (scale 3)", got)
	}

	if logs := sh.ok("service", "get-logs", "-n", "myservice"); !strings.Contains(logs, "init: scale 2") {
		t.Errorf("service get-logs lacks init()'s output:\n%s", logs)
	}

	// Figures: a command's cost above the operation it runs.
	var direct, cliRun, cliList []time.Duration
	for range 5 {
		t0 := time.Now()
		if code, _ := post(t, svc.ScoringURI, newKeys.PrimaryKey, `{"data": [1]}`); code != http.StatusOK {
			t.Fatalf("direct scoring: %d", code)
		}
		direct = append(direct, time.Since(t0))
		_, _, code, took := sh.exec("service", "run", "-n", "myservice", "-d", `{"data": [1]}`)
		if code != 0 {
			t.Fatalf("service run: exit %d", code)
		}
		cliRun = append(cliRun, took)
		_, _, code, took = sh.exec("service", "list")
		if code != 0 {
			t.Fatalf("service list: exit %d", code)
		}
		cliList = append(cliList, took)
	}

	// The cluster restarts from the workspace's data and the service
	// answers again at the same address.
	sh.ok("local", "stop")
	stopped = true
	if _, _, code, _ := sh.exec("service", "run", "-n", "myservice", "-d", `{"data": [1]}`); code == 0 {
		t.Errorf("service run with the local cluster stopped succeeded")
	}
	restartBegan := time.Now()
	_, _, code, warmStart := sh.exec("local", "start")
	if code != 0 {
		t.Fatalf("local start again: exit %d\n%s", code, sh.ok("local", "logs", "--tail", "40"))
	}
	stopped = false
	var firstAnswer time.Duration
	for {
		code, body := func() (int, string) {
			req, _ := http.NewRequest(http.MethodPost, svc.ScoringURI, strings.NewReader(`{"data": [1]}`))
			req.Header.Set("Authorization", "Bearer "+newKeys.PrimaryKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}()
		if code == http.StatusOK {
			firstAnswer = time.Since(restartBegan)
			if !strings.Contains(body, "2") {
				t.Errorf("after the restart: %s", body)
			}
			break
		}
		if time.Since(restartBegan) > 3*time.Minute {
			out, _, _, _ := sh.exec("local", "status")
			logs, _, _, _ := sh.exec("local", "logs", "--tail", "40")
			t.Fatalf("the service did not answer within 3 minutes of local start: %d %s\nlocal status: %s\nlog:\n%s", code, body, out, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sh.json(&answer, "service", "run", "-n", "myservice", "-d", `{"data": [4]}`)
	if !slices.Equal(answer.Result, []float64{8}) {
		t.Errorf("service run after the restart: %+v, want [8]", answer)
	}

	sh.ok("service", "delete", "-n", "myservice")
	if _, errs, code, _ := sh.exec("service", "show", "-n", "myservice"); code == 0 || !strings.Contains(errs, "myservice") {
		t.Errorf("service show after delete: exit %d, %s", code, errs)
	}
	sh.ok("local", "stop")
	stopped = true

	med := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	t.Logf("figures: local start cold %s, warm (restart) %s; compute target on it %s; restart to first 200 %s; "+
		"service run %s vs a direct POST %s (CLI cost %s); service list %s (medians of %d)",
		coldStart.Round(time.Millisecond), warmStart.Round(time.Millisecond), targetReady.Round(time.Millisecond),
		firstAnswer.Round(time.Millisecond), med(cliRun).Round(time.Millisecond), med(direct).Round(time.Millisecond),
		(med(cliRun) - med(direct)).Round(time.Millisecond), med(cliList).Round(time.Millisecond), len(direct))
}
