package scoring

// Tests of the behaviour azmlinfsrv (azureml-inference-server-http) has and
// aksml-score copies: its routes' headers, CORS, OPTIONS, streaming, the
// command line and environment, the app root layout and the
// inference_schema shim. Each case names what azmlinfsrv does.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func echoHandler() Handler {
	return HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
}

func TestCompatRequestIDs(t *testing.T) {
	t.Parallel()
	s := goServer(t, &testHandler{}, Config{})
	long := strings.Repeat("A", 101)
	ok100 := strings.Repeat("A", 100)
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	tests := []struct {
		name   string
		path   string
		hdr    []string
		status int
		// want: header → value; "uuid" is any generated id, "=x-request-id"
		// the same value as x-request-id, "" absent.
		want map[string]string
	}{
		{"none given", "/score", nil, 200, map[string]string{"X-Request-Id": "uuid", "X-Ms-Request-Id": "=x-request-id", "X-Ms-Client-Request-Id": ""}},
		{"x-request-id given", "/score", []string{"x-request-id", "r1"}, 200, map[string]string{"X-Request-Id": "r1", "X-Ms-Request-Id": "r1", "X-Ms-Client-Request-Id": ""}},
		{"legacy only", "/score", []string{"x-ms-request-id", "A"}, 200, map[string]string{"X-Ms-Request-Id": "A", "X-Ms-Client-Request-Id": "A", "X-Request-Id": "uuid"}},
		{"client only", "/score", []string{"x-ms-client-request-id", "A"}, 200, map[string]string{"X-Ms-Request-Id": "A", "X-Ms-Client-Request-Id": "A"}},
		{"both", "/score", []string{"x-ms-request-id", "A", "x-ms-client-request-id", "B"}, 200, map[string]string{"X-Ms-Request-Id": "A", "X-Ms-Client-Request-Id": "B"}},
		{"TraceId echoed", "/score", []string{"TraceId", "test-id"}, 200, map[string]string{"Traceid": "test-id"}},
		{"health has ids", "/", []string{"x-request-id", "h"}, 200, map[string]string{"X-Request-Id": "h", "X-Ms-Request-Id": "h"}},
		{"swagger has ids", "/swagger.json", []string{"x-request-id", "w"}, 200, map[string]string{"X-Request-Id": "w"}},
		{"100 characters pass", "/score", []string{"x-request-id", ok100}, 200, map[string]string{"X-Request-Id": ok100}},
		{"long x-request-id", "/score", []string{"x-request-id", long}, 431, map[string]string{"X-Request-Id": "", "X-Ms-Request-Id": "", "X-Ms-Client-Request-Id": ""}},
		{"long legacy id", "/score", []string{"x-request-id", "A", "x-ms-request-id", long}, 431, map[string]string{"X-Request-Id": "A", "X-Ms-Request-Id": "", "X-Ms-Client-Request-Id": ""}},
		{"long client id", "/score", []string{"x-ms-client-request-id", long}, 431, map[string]string{"X-Request-Id": "uuid", "X-Ms-Request-Id": ""}},
		{"not on unknown paths", "/nope", []string{"x-request-id", "n"}, 404, map[string]string{"X-Request-Id": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(s, "POST", tc.path, "{}", tc.hdr...)
			if tc.path != "/score" && tc.path != "/nope" {
				r = do(s, "GET", tc.path, "", tc.hdr...)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			for k, w := range tc.want {
				got, present := r.header[k]
				switch {
				case w == "":
					if present {
						t.Errorf("%s = %q, want absent", k, got)
					}
				case w == "uuid":
					if len(got) != 1 || !uuid.MatchString(got[0]) {
						t.Errorf("%s = %q, want one generated UUID", k, got)
					}
				case w == "=x-request-id":
					if len(got) != 1 || got[0] != r.header.Get("X-Request-Id") {
						t.Errorf("%s = %q, want x-request-id %q", k, got, r.header.Get("X-Request-Id"))
					}
				default:
					if len(got) != 1 || got[0] != w {
						t.Errorf("%s = %q, want [%s]", k, got, w)
					}
				}
			}
		})
	}
	r := do(s, "GET", "/score", "", "x-request-id", long)
	if r.body != `{"message":"x-request-id must not exceed 100 characters"}` {
		t.Errorf("431 body %s", r.body)
	}
	r = do(s, "GET", "/score", "", "x-ms-client-request-id", long)
	if r.body != `{"message":"x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"}` {
		t.Errorf("431 body %s", r.body)
	}
	if v := r.header.Get("X-Ms-Server-Version"); !strings.HasPrefix(v, "aksml-score/") {
		t.Errorf("x-ms-server-version %q", v)
	}
	hidden := goServer(t, &testHandler{}, Config{HideServerVersion: true})
	if v, ok := do(hidden, "GET", "/", "").header["X-Ms-Server-Version"]; ok {
		t.Errorf("hidden server version sent: %q", v)
	}
}

func TestCompatRunFunctionFailedHeader(t *testing.T) {
	t.Parallel()
	s := goServer(t, &testHandler{run: func(ctx context.Context, in []byte) ([]byte, error) {
		if string(in) == "fail" {
			return nil, fmt.Errorf("secret data 1234")
		}
		return in, nil
	}}, Config{})
	for _, tc := range []struct {
		method, target, body string
		status               int
		want                 string // "" means absent
	}{
		{"POST", "/score", "1", 200, "False"},
		{"POST", "/score", "fail", 500, "True"},
		{"OPTIONS", "/score", "", 200, "False"},
		{"GET", "/swagger.json?version=7", "", 404, "False"},
		{"GET", "/", "", 200, ""},
	} {
		r := do(s, tc.method, tc.target, tc.body)
		got, ok := r.header["X-Ms-Run-Function-Failed"]
		if r.status != tc.status || (tc.want == "" && ok) || (tc.want != "" && (len(got) != 1 || got[0] != tc.want)) {
			t.Errorf("%s %s: %d %q, want %d with x-ms-run-function-failed %q", tc.method, tc.target, r.status, got, tc.status, tc.want)
		}
		if strings.Contains(r.body, "secret data") {
			t.Errorf("%s %s: the error text reached the caller: %s", tc.method, tc.target, r.body)
		}
	}
}

func TestCompatCORS(t *testing.T) {
	t.Parallel()
	two := goServer(t, &testHandler{}, Config{CORSOrigins: ParseOrigins("www.microsoft.com,  www.bing.com")})
	one := goServer(t, &testHandler{}, Config{CORSOrigins: ParseOrigins("www.microsoft.com")})
	wild := goServer(t, &testHandler{}, Config{CORSOrigins: ParseOrigins("*")})
	re := goServer(t, &testHandler{}, Config{CORSOrigins: ParseOrigins(`https://.*\.example\.com`)})
	off := goServer(t, &testHandler{}, Config{})
	tests := []struct {
		name   string
		s      *Server
		method string
		hdr    []string
		want   map[string]string // "" = absent
	}{
		{"allowed origin echoed", one, "OPTIONS", []string{"Origin", "www.microsoft.com"},
			map[string]string{"Access-Control-Allow-Origin": "www.microsoft.com", "Vary": ""}},
		{"other origin refused", one, "OPTIONS", []string{"Origin", "www.azure.com"},
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"several origins vary", two, "POST", []string{"Origin", "www.bing.com"},
			map[string]string{"Access-Control-Allow-Origin": "www.bing.com", "Vary": "Origin"}},
		{"no Origin lists the origins", two, "POST", nil,
			map[string]string{"Access-Control-Allow-Origin": "www.bing.com,www.microsoft.com"}},
		{"wildcard without Origin", wild, "POST", nil, map[string]string{"Access-Control-Allow-Origin": "*", "Vary": ""}},
		{"wildcard echoes the Origin", wild, "POST", []string{"Origin", "https://a.test"},
			map[string]string{"Access-Control-Allow-Origin": "https://a.test", "Vary": "Origin"}},
		{"preflight", one, "OPTIONS", []string{"Origin", "www.microsoft.com", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "X-B, content-type"},
			map[string]string{"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Allow-Headers": "X-B, content-type"}},
		{"preflight of another method", one, "OPTIONS", []string{"Origin", "www.microsoft.com", "Access-Control-Request-Method", "DELETE"},
			map[string]string{"Access-Control-Allow-Origin": "www.microsoft.com", "Access-Control-Allow-Methods": ""}},
		{"regular expression origin", re, "POST", []string{"Origin", "https://api.example.com"},
			map[string]string{"Access-Control-Allow-Origin": "https://api.example.com"}},
		{"regular expression refuses", re, "POST", []string{"Origin", "https://example.org"},
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"off", off, "OPTIONS", []string{"Origin", "www.microsoft.com"}, map[string]string{"Access-Control-Allow-Origin": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(tc.s, tc.method, "/score", "{}", tc.hdr...)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if tc.method == "OPTIONS" && r.body != "" {
				t.Errorf("OPTIONS body %q, want empty", r.body)
			}
			for k, w := range tc.want {
				got := strings.Join(r.header[k], ",")
				if got != w {
					t.Errorf("%s = %q, want %q", k, got, w)
				}
			}
		})
	}
}

func TestCompatSwagger(t *testing.T) {
	t.Parallel()
	s := goServer(t, &testHandler{}, Config{ServicePathPrefix: "/api/v1/service/svc/", ServiceVersion: "7"})
	for _, tc := range []struct{ version, openapi string }{{"3", "3.0.3"}, {"3.0", "3.0.3"}, {"3.1", "3.1.0"}} {
		r := do(s, "GET", "/swagger.json?version="+tc.version, "")
		var doc struct {
			OpenAPI string                     `json:"openapi"`
			Info    map[string]string          `json:"info"`
			Paths   map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal([]byte(r.body), &doc); err != nil || r.status != 200 {
			t.Fatalf("version %s: %d %s", tc.version, r.status, r.body)
		}
		if doc.OpenAPI != tc.openapi || doc.Info["title"] != "ML service" || doc.Info["version"] != "7" {
			t.Errorf("version %s: openapi %q, info %v", tc.version, doc.OpenAPI, doc.Info)
		}
		for _, p := range []string{"/api/v1/service/svc/", "/api/v1/service/svc/score", "/api/v1/service/svc/swagger.json"} {
			if _, ok := doc.Paths[p]; !ok {
				t.Errorf("version %s: no path %s in %v", tc.version, p, doc.Paths)
			}
		}
	}
	if r := do(s, "GET", "/swagger.json?version=4", ""); r.status != 404 || r.body != `{"message":"Swagger version [4] is not valid. Supported versions: [2, 3, 3.1]."}` {
		t.Errorf("bad version: %d %s", r.status, r.body)
	}
}

// compatRawScript is a @rawhttp entry script: it streams a generator's items,
// returns AMLResponses with its own headers, and answers OPTIONS itself.
const compatRawScript = `import json, os, time
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

def items(n, gate):
    # Item i is produced only once the test has received item i-1 (it
    # creates gate/i): a server that buffered the body would never send it.
    for i in range(n):
        if i > 0 and gate:
            deadline = time.time() + 30
            while not os.path.exists(os.path.join(gate, str(i))) and time.time() < deadline:
                time.sleep(0.002)
        yield json.dumps({"i": i, "sent": time.time()}) + "\n"

def forever():
    i = 0
    while True:
        yield "tick %d\n" % i
        i += 1
        time.sleep(0.01)

def broken():
    yield "first\n"
    raise RuntimeError("generator broke")

@rawhttp
def run(request):
    kind = request.args.get("kind", "")
    if request.method == "OPTIONS":
        return AMLResponse("", 204, {"Access-Control-Allow-Origin": "https://mine.test", "X-Seen-Method": "OPTIONS"})
    if kind == "stream":
        body = json.loads(request.get_data())
        return AMLResponse(items(body["n"], body.get("gate")), 200, {"Content-Type": "application/x-ndjson"})
    if kind == "forever":
        return AMLResponse(forever(), 200)
    if kind == "broken":
        return AMLResponse(broken(), 200)
    if kind == "headers":
        return AMLResponse("text body", 201, {"Content-Type": "text/plain", "x-request-id": "from-script",
                                               "X-Multi": "a, b", "TraceId": "script-trace"})
    if kind == "failed":
        return AMLResponse(None, 555)
    if kind == "pid":
        return AMLResponse(str(os.getpid()), 200)
    return AMLResponse(request.method, 200)
`

func TestCompatPythonRawHTTP(t *testing.T) {
	t.Parallel()
	s := pyServer(t, compatRawScript, Config{CORSOrigins: []string{"*"}}, nil)
	// Headers from the AMLResponse replace the server's defaults; the
	// request ids stay the server's.
	r := do(s, "POST", "/score?kind=headers", "x", "x-request-id", "client-id", "TraceId", "t1")
	if r.status != 201 || r.body != "text body" {
		t.Fatalf("headers: %d %q", r.status, r.body)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/plain", "X-Request-Id": "client-id", "X-Multi": "a|b",
		"Traceid": "t1|script-trace", "X-Ms-Run-Function-Failed": "False",
	} {
		if got := strings.Join(r.header[k], "|"); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if n := len(r.header["X-Ms-Run-Fn-Exec-Ms"]); n != 1 {
		t.Errorf("x-ms-run-fn-exec-ms sent %d times", n)
	}
	// A status of 500 or more sets x-ms-run-function-failed: True.
	if r := do(s, "GET", "/score?kind=failed", ""); r.status != 555 || r.header.Get("X-Ms-Run-Function-Failed") != "True" || r.body != "{}" {
		t.Errorf("failed: %d %q %v", r.status, r.body, r.header)
	}
	// run() sees OPTIONS; its own Access-Control-Allow-Origin wins over the
	// server's CORS headers.
	r = do(s, "OPTIONS", "/score", "", "Origin", "https://other.test")
	if r.status != 204 || r.header.Get("X-Seen-Method") != "OPTIONS" || strings.Join(r.header["Access-Control-Allow-Origin"], ",") != "https://mine.test" {
		t.Errorf("OPTIONS: %d %v", r.status, r.header)
	}
	// Other methods reach run() too.
	if r := do(s, "HEAD", "/score", ""); r.status != 200 {
		t.Errorf("HEAD: %d", r.status)
	}
	// A generator raising mid-stream cuts the response short and is logged.
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/score?kind=broken")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "first\n" || err == nil {
		t.Errorf("broken stream: %q, %v (want the first chunk, then an error)", b, err)
	}
	eventually(t, "the generator's error in the log", func() bool { return logsContain(s, "RuntimeError: generator broke") })
}

// TestCompatStreaming checks that an AMLResponse built from a generator
// reaches the client chunk by chunk, each when it is produced, as azmlinfsrv
// streams it: the script produces item i only after the test has received
// item i-1, and each item carries the time it was sent.
func TestCompatStreaming(t *testing.T) {
	t.Parallel()
	s := pyServer(t, compatRawScript, Config{}, nil)
	srv := httptest.NewServer(s)
	defer srv.Close()
	gate := t.TempDir()
	const n = 5
	body, _ := json.Marshal(map[string]any{"n": n, "gate": gate})
	resp, err := http.Post(srv.URL+"/score?kind=stream", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || resp.ContentLength != -1 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %v length %d %s\n%s", resp.StatusCode, resp.Header, resp.ContentLength, b, strings.Join(s.Logs(30, false), "\n"))
	}
	rd := bufio.NewReader(resp.Body)
	var lags []time.Duration
	for i := 0; i < n; i++ {
		line, err := rd.ReadString('\n')
		arrived := time.Now()
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		var item struct {
			I    int     `json:"i"`
			Sent float64 `json:"sent"`
		}
		if err := json.Unmarshal([]byte(line), &item); err != nil || item.I != i {
			t.Fatalf("item %d: %q %v", i, line, err)
		}
		sent := time.Unix(0, int64(item.Sent*1e9))
		lag := arrived.Sub(sent)
		lags = append(lags, lag)
		// Received when sent (same machine, same clock), not at the end.
		if lag > 5*time.Second || lag < -time.Second {
			t.Errorf("item %d arrived %v after it was sent", i, lag)
		}
		if err := os.WriteFile(filepath.Join(gate, strconv.Itoa(i+1)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if rest, _ := io.ReadAll(rd); len(rest) != 0 {
		t.Errorf("after the items: %q", rest)
	}
	t.Logf("lag of each chunk behind its send time: %v", lags)

	// A client that leaves mid-stream stops an endless generator, and the
	// worker (the only one) serves the next request.
	before := pidOfRaw(t, s)
	resp2, err := http.Get(srv.URL + "/score?kind=forever")
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(resp2.Body).ReadString('\n'); err != nil || line != "tick 0\n" {
		t.Fatalf("forever: %q %v", line, err)
	}
	resp2.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/score?kind=pid", nil)
	resp3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("after the abandoned stream: %v", err)
	}
	b, _ := io.ReadAll(resp3.Body)
	resp3.Body.Close()
	if string(b) != strconv.Itoa(before) {
		t.Errorf("after the abandoned stream: pid %s, want the same worker %d\n%s", b, before, strings.Join(s.Logs(30, false), "\n"))
	}
}

func pidOfRaw(t *testing.T, s *Server) int {
	t.Helper()
	r := do(s, "GET", "/score?kind=pid", "")
	pid, err := strconv.Atoi(r.body)
	if r.status != 200 || err != nil {
		t.Fatalf("pid: %d %q", r.status, r.body)
	}
	return pid
}

func TestCompatPythonPlainOptions(t *testing.T) {
	t.Parallel()
	s := pyServer(t, behaviourScript, Config{CORSOrigins: []string{"www.microsoft.com"}}, nil)
	r := do(s, "OPTIONS", "/score", "", "Origin", "www.microsoft.com")
	if r.status != 200 || r.body != "" || r.header.Get("Access-Control-Allow-Origin") != "www.microsoft.com" {
		t.Errorf("OPTIONS: %d %q %v", r.status, r.body, r.header)
	}
	if r := do(s, "HEAD", "/score", ""); r.status != 405 {
		t.Errorf("HEAD: %d %q", r.status, r.body)
	}
	if r := do(s, "POST", "/score", `[1]`); r.header.Get("X-Ms-Run-Function-Failed") != "False" {
		t.Errorf("success: %v", r.header)
	}
}

// TestCompatAppRoot checks the layout of an Azure ML container: the working
// directory is the app root, which holds the source directory under its own
// name (and azureml-models); the source directory is on sys.path; a model
// directory that does not exist is passed on.
func TestCompatAppRoot(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src := writeFiles(t, filepath.Join(base, "source_directory"), map[string]string{
		"extradata.json": `{"extra": 42}`,
		"helper.py":      "VALUE = 'from helper'\n",
		"scripts/score.py": `import json, os, sys
import helper

def init():
    global extra
    with open("./source_directory/extradata.json") as f:
        extra = json.load(f)["extra"]

def run(raw):
    return {"extra": extra, "helper": helper.VALUE, "cwd": os.getcwd(),
            "app_root": os.environ["AML_APP_ROOT"], "models_linked": os.path.isdir("azureml-models"),
            "model_dir": os.environ.get("AZUREML_MODEL_DIR"), "path0": sys.path[0]}
`,
	})
	models := filepath.Join(base, "azureml-models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(models, "not-there", "1")
	s := newReady(t, Config{EntryScript: "scripts/score.py", SourceDir: src, ModelDir: missing, Interpreter: testPython(t)})
	r := do(s, "POST", "/score", "x")
	if r.status != 200 {
		t.Fatalf("%d %s\n%s", r.status, r.body, strings.Join(s.Logs(0, false), "\n"))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	root := s.py.appRoot
	want := map[string]any{"extra": 42.0, "helper": "from helper", "cwd": root, "app_root": root,
		"models_linked": true, "model_dir": missing, "path0": root}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the app root %s outlived Close: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(src, "extradata.json")); err != nil {
		t.Errorf("Close removed the source directory's files: %v", err)
	}
}

const nestedSchemaScript = `import numpy as np, pandas as pd
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

sample = StandardPythonParameterType({
    "arr": NumpyParameterType(np.array([[1.0, 2.0]])),
    "inner": StandardPythonParameterType({"df": PandasParameterType(pd.DataFrame({"a": [1], "b": [2.5]}))}),
    "n": 1,
})

@input_schema("data", sample)
@input_schema("frame", PandasParameterType(pd.DataFrame({"x": [1.0], "y": ["s"]})), optional=True)
def run(data, frame=None):
    out = {"arr": type(data["arr"]).__name__, "df": type(data["inner"]["df"]).__name__,
           "df_b_dtype": str(data["inner"]["df"]["b"].dtype), "n": data["n"]}
    if frame is not None:
        out["frame"] = type(frame).__name__
        out["frame_rows"] = len(frame)
        out["frame_x_dtype"] = str(frame["x"].dtype)
    return out
`

func TestCompatInferenceSchemaNested(t *testing.T) {
	t.Parallel()
	s := pyServer(t, nestedSchemaScript, Config{}, nil)
	tests := []struct {
		name, body string
		want       map[string]any
	}{
		{"nested typed values converted",
			`{"data": {"arr": [[1, 2], [3, 4]], "inner": {"df": [{"a": 1, "b": 2}]}, "n": 3}}`,
			map[string]any{"arr": "ndarray", "df": "DataFrame", "df_b_dtype": "float64", "n": 3.0}},
		{"pandas column-oriented dict",
			`{"data": {"arr": [[1, 2]], "inner": {"df": {"a": [1, 2], "b": [3, 4]}}, "n": 1}, "frame": {"x": [1, 2, 3], "y": ["p", "q", "r"]}}`,
			map[string]any{"df": "DataFrame", "frame": "DataFrame", "frame_rows": 3.0, "frame_x_dtype": "float64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(s, "POST", "/score", tc.body)
			if r.status != 200 {
				t.Fatalf("%d %s\n%s", r.status, r.body, strings.Join(s.Logs(20, false), "\n"))
			}
			got := r.json(t).(map[string]any)
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %v, want %v", k, got[k], w)
				}
			}
		})
	}
	r := do(s, "GET", "/swagger.json?version=3", "")
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Format     string `json:"format"`
					Properties map[string]struct {
						Format string `json:"format"`
					} `json:"properties"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatal(err)
	}
	in := doc.Components.Schemas["ServiceInput"]
	if f := in.Properties["data"].Properties["arr"].Format; f != "numpy.ndarray" {
		t.Errorf("numpy format %q", f)
	}
	if f := in.Properties["frame"].Format; !strings.HasPrefix(f, "pandas.DataFrame") {
		t.Errorf("pandas format %q", f)
	}
}
