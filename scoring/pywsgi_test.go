package scoring

import (
	"encoding/json"
	"testing"
)

// environScript answers a raw request with what its WSGI environ says.
const environScript = `from azureml.contrib.services.aml_request import rawhttp

def init():
    pass

@rawhttp
def run(request):
    e = request.environ
    return {"kind": type(request).__name__, "host": request.host, "url": request.url,
            "server": e["SERVER_NAME"], "http_host": e["HTTP_HOST"], "method": e["REQUEST_METHOD"],
            "path": e["PATH_INFO"], "query": e["QUERY_STRING"], "length": e["CONTENT_LENGTH"],
            "type": e.get("CONTENT_TYPE"), "a": e.get("HTTP_X_A"), "body": request.get_data(as_text=True)}
`

// TestPythonRawHTTPEnviron checks the WSGI environ of a @rawhttp request
// (the Host header gives HTTP_HOST and SERVER_NAME) with the AMLRequest
// shim over Flask, with the shim's standard-library request, and with an
// installed Flask-based azureml package, where the host builds the Flask
// request itself.
func TestPythonRawHTTPEnviron(t *testing.T) {
	t.Parallel()
	hidden := writeFiles(t, t.TempDir(), map[string]string{
		"flask/__init__.py":    "raise ImportError('flask hidden by the test')\n",
		"werkzeug/__init__.py": "raise ImportError('werkzeug hidden by the test')\n",
	})
	installed := writeFiles(t, t.TempDir(), map[string]string{
		"azureml/__init__.py":                  "",
		"azureml/contrib/__init__.py":          "",
		"azureml/contrib/services/__init__.py": "",
		"azureml/contrib/services/aml_request.py": `from flask import Request as AMLRequest

_rawHttpRequested = False

def rawhttp(func):
    global _rawHttpRequested
    _rawHttpRequested = True
    return func
`,
	})
	tests := []struct {
		name, kind string
		env        map[string]string
	}{
		{"shim over flask", "AMLRequest", nil},
		{"shim over the standard library", "AMLRequest", map[string]string{"PYTHONPATH": hidden}},
		{"installed azureml", "Request", map[string]string{"PYTHONPATH": installed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := pyServer(t, environScript, Config{Env: tc.env}, nil)
			r := do(s, "POST", "http://example.com:8080/score?q=1", "hello", "X-A", "b", "Content-Type", "text/plain")
			var got map[string]any
			if err := json.Unmarshal([]byte(r.body), &got); r.status != 200 || err != nil {
				t.Fatalf("%d %q: %v", r.status, r.body, err)
			}
			want := map[string]any{
				"kind": tc.kind, "host": "example.com:8080", "url": "http://example.com:8080/score?q=1",
				"server": "example.com", "http_host": "example.com:8080", "method": "POST",
				"path": "/score", "query": "q=1", "length": "5", "type": "text/plain", "a": "b", "body": "hello",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}
