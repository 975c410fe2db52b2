package scoring

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
)

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestCLISettings checks how azmlinfsrv's flags, environment variables and
// config file become the replica's settings, flags first, then the
// environment, then the file.
func TestCLISettings(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, t.TempDir(), map[string]string{
		"src/score.py":  "def init(): pass\ndef run(d): return d\n",
		"main.py":       "def init(): pass\ndef run(d): return d\n",
		"conf.json":     `{"AZUREML_ENTRY_SCRIPT": "src/score.py", "SCORING_TIMEOUT_MS": 6000, "SERVICE_NAME": "from-file", "AML_CORS_ORIGINS": "www.microsoft.com ", "AML_APP_INSIGHTS_ENABLED": true, "EXTRA_KEY": false, "AZUREML_MODEL_DIR": null}`,
		"badconf.json":  `{"SCORING_TIMEOUT_MS": "soon"}`,
		"other/x.txt":   "",
		"empty/keep.md": "",
	})
	score := filepath.Join(root, "src", "score.py")
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, st *cliSettings)
	}{
		{"entry script from the environment, relative to the app root",
			nil, map[string]string{"AML_APP_ROOT": root, "AZUREML_ENTRY_SCRIPT": "src/score.py"},
			func(t *testing.T, st *cliSettings) {
				eq(t, "entry", st.cfg.EntryScript, score)
				eq(t, "app root", st.cfg.AppRoot, root)
				eq(t, "timeout", st.cfg.ScoringTimeout, time.Hour)
				eq(t, "separate health port", st.separateHealth, false)
			}},
		{"no entry script: main.py in the app root", nil, map[string]string{"AML_APP_ROOT": root},
			func(t *testing.T, st *cliSettings) {
				eq(t, "entry", st.cfg.EntryScript, "")
				c, err := st.cfg.withDefaults()
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "resolved entry", c.EntryScript, filepath.Join(root, "main.py"))
			}},
		{"source directory relative to the app root",
			nil, map[string]string{"AML_APP_ROOT": root, "AZUREML_SOURCE_DIRECTORY": "src", "AZUREML_ENTRY_SCRIPT": "score.py"},
			func(t *testing.T, st *cliSettings) {
				eq(t, "source", st.cfg.SourceDir, filepath.Join(root, "src"))
				eq(t, "entry", st.cfg.EntryScript, score)
			}},
		{"flags",
			[]string{"--entry_script", score, "--model_dir", "./no/such/dir", "--port", "6000", "--worker_count", "3",
				"--access_control_allow_origins", "a.com, b.com", "--appinsights_instrumentation_key", "k", "--rest",
				"--scoring_timeout_ms", "1500", "--service_name", "svc"},
			map[string]string{"WORKER_COUNT": "9", "SCORING_TIMEOUT_MS": "99", "AML_CORS_ORIGINS": "c.com", "SERVICE_NAME": "env"},
			func(t *testing.T, st *cliSettings) {
				eq(t, "model dir passed on", st.cfg.ModelDir, "./no/such/dir")
				eq(t, "port", st.port, 6000)
				eq(t, "workers", st.cfg.Workers, 3)
				eq(t, "cors", st.cfg.CORSOrigins, []string{"a.com", "b.com"})
				eq(t, "timeout", st.cfg.ScoringTimeout, 1500*time.Millisecond)
				eq(t, "name", st.cfg.ServiceName, "svc")
			}},
		{"environment",
			[]string{"--entry_script", score},
			map[string]string{"WORKER_COUNT": "2", "SCORING_TIMEOUT_MS": "250", "AML_CORS_ORIGINS": "*", "SERVICE_NAME": "env",
				"SERVICE_VERSION": "2.1", "SERVICE_PATH_PREFIX": "api/x", "AZUREML_MODEL_DIR": "/models", "SERVER_VERSION_LOG_RESPONSE_ENABLED": "false",
				"SEPERATE_HEALTH_ENDPOINT": "true", "SERVER_PORT": "3535"},
			func(t *testing.T, st *cliSettings) {
				eq(t, "workers", st.cfg.Workers, 2)
				eq(t, "timeout", st.cfg.ScoringTimeout, 250*time.Millisecond)
				eq(t, "cors", st.cfg.CORSOrigins, []string{"*"})
				eq(t, "version", st.cfg.ServiceVersion, "2.1")
				eq(t, "prefix", st.cfg.ServicePathPrefix, "api/x")
				eq(t, "model dir", st.cfg.ModelDir, "/models")
				eq(t, "hide version", st.cfg.HideServerVersion, true)
				eq(t, "health port", st.healthPort, DefaultHealthPort)
				eq(t, "separate health port", st.separateHealth, true)
				eq(t, "port (SERVER_PORT is ignored)", st.port, 5001)
			}},
		{"health port flag needs SEPERATE_HEALTH_ENDPOINT",
			[]string{"--entry_script", score, "--health_port", "8346"}, nil,
			func(t *testing.T, st *cliSettings) { eq(t, "separate health port", st.separateHealth, false) }},
		{"health port flag",
			[]string{"--entry_script", score, "--health_port", "8346"}, map[string]string{"SEPERATE_HEALTH_ENDPOINT": "true"},
			func(t *testing.T, st *cliSettings) { eq(t, "health port", st.healthPort, 8346) }},
		{"config file",
			[]string{"--config_file", filepath.Join(root, "conf.json")}, map[string]string{"AML_APP_ROOT": root},
			func(t *testing.T, st *cliSettings) {
				eq(t, "entry", st.cfg.EntryScript, score)
				eq(t, "timeout", st.cfg.ScoringTimeout, 6*time.Second)
				eq(t, "name", st.cfg.ServiceName, "from-file")
				eq(t, "cors", st.cfg.CORSOrigins, []string{"www.microsoft.com"})
				eq(t, "model dir (null)", st.cfg.ModelDir, "")
			}},
		{"environment over config file",
			nil, map[string]string{"AML_APP_ROOT": root, "AZUREML_CONFIG_FILE": filepath.Join(root, "conf.json"), "SCORING_TIMEOUT_MS": "700", "SERVICE_NAME": "env"},
			func(t *testing.T, st *cliSettings) {
				eq(t, "timeout", st.cfg.ScoringTimeout, 700*time.Millisecond)
				eq(t, "name", st.cfg.ServiceName, "env")
			}},
		{"model data collection",
			[]string{"--entry_script", score, "--service_name", "svc"}, map[string]string{"AML_MODEL_DC_STORAGE_ENABLED": "True", "AKSML_MODEL_DATA_DIR": root},
			func(t *testing.T, st *cliSettings) {
				eq(t, "data collection", st.cfg.DataCollection, &DataCollection{Store: &LocalModelDataStore{Root: root}, Service: "svc"})
			}},
		{"model data collection without a directory",
			[]string{"--entry_script", score}, map[string]string{"AML_MODEL_DC_STORAGE_ENABLED": "true"},
			func(t *testing.T, st *cliSettings) { eq(t, "data collection", st.cfg.DataCollection, nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			st, err := parseCLI(tc.args, mapEnv(tc.env), nil, &stderr)
			if err != nil {
				t.Fatalf("parseCLI: %v", err)
			}
			tc.check(t, st)
			if tc.name == "config file" && !strings.Contains(stderr.String(), "EXTRA_KEY") {
				t.Errorf("unknown config key not reported: %q", stderr.String())
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad config value", []string{"--config_file", filepath.Join(root, "badconf.json"), "--entry_script", score}, nil, `SCORING_TIMEOUT_MS: "soon" is not an integer`},
		{"missing config file", []string{"--config_file", filepath.Join(root, "none.json"), "--entry_script", score}, nil, "none.json"},
		{"bad SCORING_TIMEOUT_MS", []string{"--entry_script", score}, map[string]string{"SCORING_TIMEOUT_MS": "-5"}, `SCORING_TIMEOUT_MS "-5"`},
		{"bad WORKER_COUNT", []string{"--entry_script", score}, map[string]string{"WORKER_COUNT": "many"}, `WORKER_COUNT "many"`},
		{"bad worker_count", []string{"--worker_count", "0"}, nil, "worker_count 0"},
		{"bad health port", []string{"--health_port", "99999"}, nil, "health_port 99999"},
		{"bad AML_MODEL_DC_STORAGE_ENABLED", []string{"--entry_script", score}, map[string]string{"AML_MODEL_DC_STORAGE_ENABLED": "maybe"}, `AML_MODEL_DC_STORAGE_ENABLED "maybe" is not true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseCLI(tc.args, mapEnv(tc.env), nil, io.Discard)
			if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseCLI: %v, want InvalidArgument with %q", err, tc.want)
			}
		})
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestCLIServes runs the command as azmlinfsrv would be run in a container:
// no --entry_script (main.py in AML_APP_ROOT), the source directory and the
// app root on sys.path, SCORING_TIMEOUT_MS, a config file, CORS from the
// command line and a separate health port.
func TestCLIServes(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, t.TempDir(), map[string]string{
		"rootmod.py":    "NAME = 'root module'\n",
		"src/srcmod.py": "NAME = 'source module'\n",
		"config.json":   `{"SERVICE_NAME": "svc-from-config"}`,
		"swagger3.json": `{"openapi": "3.0.0", "info": {"title": "user file"}}`,
		"main.py": `import os, time, rootmod, srcmod
def init(): pass
def run(raw):
    if raw == "slow":
        time.sleep(60)
    return {"root": rootmod.NAME, "src": srcmod.NAME, "app_root": os.environ["AML_APP_ROOT"], "cwd": os.getcwd()}
`,
	})
	ctx, cancel := context.WithCancel(context.Background())
	env := map[string]string{"AML_APP_ROOT": root, "AZUREML_SOURCE_DIRECTORY": "src", "SCORING_TIMEOUT_MS": "1000",
		"SEPERATE_HEALTH_ENDPOINT": "true", "AKSML_PYTHON": testPython(t)}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--port", "0", "--health_port", "0", "--access_control_allow_origins", "www.microsoft.com"},
			mapEnv(env), nil, Options{}, io.Discard, pw)
		pw.Close()
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var addr, health string
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`(listening|health) on http://(\S+)`)
	for addr == "" && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			if m[1] == "health" {
				health = m[2]
			} else {
				addr = m[2]
			}
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" || health == "" {
		t.Fatalf("addresses %q %q", addr, health)
	}
	get := func(method, url, body string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	var status int
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if status, _, _ = get("GET", "http://"+health+"/", ""); status == 200 || time.Now().After(deadline) {
			break
		}
	}
	if status != 200 {
		t.Fatalf("health port: %d", status)
	}
	status, hdr, body := get("POST", "http://"+addr+"/score", "x", "Origin", "www.microsoft.com")
	want := `{"root": "root module", "src": "source module", "app_root": "` + root + `", "cwd": "` + root + `"}`
	if status != 200 || body != want || hdr.Get("Access-Control-Allow-Origin") != "www.microsoft.com" {
		t.Errorf("score: %d %s %v, want %s", status, body, hdr, want)
	}
	status, hdr, body = get("POST", "http://"+addr+"/score", "slow")
	if status != 504 || body != `{"message":"Scoring timeout after 1000 ms"}` || hdr.Get("X-Ms-Run-Function-Failed") != "True" {
		t.Errorf("timeout: %d %s %v", status, body, hdr)
	}
	if _, _, body = get("GET", "http://"+addr+"/swagger.json", ""); !strings.Contains(body, `"title": "svc-from-config"`) {
		t.Errorf("swagger 2 title: %s", body)
	}
	if _, _, body = get("GET", "http://"+addr+"/swagger.json?version=3", ""); body != `{"openapi": "3.0.0", "info": {"title": "user file"}}` {
		t.Errorf("user swagger3.json from the app root: %s", body)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("the app root given is not the server's to remove: %v", err)
	}
}
