package scoring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
)

func frame(kind byte, payload []byte) []byte {
	b := make([]byte, frameHeader, frameHeader+len(payload))
	b = append(b, payload...)
	putHeader(b, kind)
	return b
}

func metaPayload(meta string, body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(meta)))
	return append(append(b, meta...), body...)
}

// FuzzReadFrame feeds arbitrary worker output to the frame and metadata
// decoders: they must fail cleanly, never panic or over-allocate.
func FuzzReadFrame(f *testing.F) {
	f.Add(frame(kindOK, []byte(`{"a": 1}`)))
	f.Add(frame(kindError, []byte(`{"status": 500, "message": "x", "error": "ValueError: y"}`)))
	f.Add(frame(kindResponse, metaPayload(`{"status": 201, "headers": [["X-A", "b"]]}`, "body")))
	f.Add(frame(kindInitOK, []byte(`{"mode": "plain"}`)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 'O'})
	f.Add([]byte{0, 0, 0, 10, 'P', 0, 0, 0, 200})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, payload, _, err := readFrame(bytes.NewReader(data), nil)
		if err != nil {
			return
		}
		if len(payload) > len(data) {
			t.Fatalf("payload of %d bytes from %d bytes of input", len(payload), len(data))
		}
		var m respMeta
		body, err := splitMeta(payload, &m)
		if err == nil && len(body) > len(payload) {
			t.Fatalf("body longer than payload")
		}
		_ = kind
	})
}

// FuzzParseEnvAssignment checks the --env KEY=VALUE parser.
func FuzzParseEnvAssignment(f *testing.F) {
	for _, s := range []string{"A=B", "=x", "A", "A==", "K=v=w", "\x00=1", "A B=1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, v, err := parseEnvAssignment(s)
		if err != nil {
			return
		}
		if k == "" || k+"="+v != s {
			t.Fatalf("parse %q = %q, %q", s, k, v)
		}
	})
}

// FuzzServeHTTP sends arbitrary requests to a Go-handler replica: every
// answer must be a valid status with a JSON error body for failures.
func FuzzServeHTTP(f *testing.F) {
	s, err := NewServer(Config{Handler: func() Handler {
		return HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
	}, MaxBodyBytes: 64})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	if err := s.Wait(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	for _, seed := range []struct{ method, target, body string }{
		{"POST", "/score", `{"a":1}`}, {"GET", "/score?x=1&x=[2]", ""}, {"GET", "/", ""},
		{"GET", "/swagger.json?version=3", ""}, {"PATCH", "/score", "x"}, {"POST", "/score", strings.Repeat("y", 65)},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, target, body string) {
		req, err := http.NewRequest(method, "http://replica"+target, strings.NewReader(body))
		if err != nil || !validMethod(method) {
			return
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Code >= 400 && !strings.HasPrefix(rec.Body.String(), "{") {
			t.Fatalf("error body %q is not JSON", rec.Body.String())
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// FuzzParseFileConfig feeds arbitrary bytes to the azmlinfsrv config file
// parser: it returns settings or an InvalidArgument error, never panics,
// and a SCORING_TIMEOUT_MS it accepts is positive.
func FuzzParseFileConfig(f *testing.F) {
	for _, seed := range []string{
		`{"AZUREML_ENTRY_SCRIPT": "resources/valid_score.py", "AML_CORS_ORIGINS": "www.microsoft.com ", "SCORING_TIMEOUT_MS": 6000, "AML_APP_INSIGHTS_ENABLED": true, "EXTRA_KEY": false}`,
		`{"SCORING_TIMEOUT_MS": "6000"}`, `{"SCORING_TIMEOUT_MS": 1.5}`, `{"SCORING_TIMEOUT_MS": -1}`, `{"SCORING_TIMEOUT_MS": 1e400}`,
		`{"AZUREML_MODEL_DIR": null}`, `{"SERVICE_NAME": 3}`, `[]`, `null`, `{} {}`, `{"AML_APP_INSIGHTS_ENABLED": "maybe"}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := parseFileConfig("config.json", b)
		if err != nil {
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("error without InvalidArgument: %v", err)
			}
			return
		}
		if fc.timeout < 0 {
			t.Fatalf("negative timeout %d", fc.timeout)
		}
	})
}

// FuzzCORSOrigins builds a CORS policy from arbitrary AML_CORS_ORIGINS
// values and applies it to an arbitrary Origin: no panic, and an origin
// listed literally is always allowed.
func FuzzCORSOrigins(f *testing.F) {
	for _, seed := range [][2]string{{"www.microsoft.com,  www.bing.com", "www.bing.com"}, {"*", "https://x"}, {`https://.*\.example\.com`, "https://a.example.com"}, {"(", "("}, {"]", "a"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, origins, origin string) {
		p := newCORSPolicy(ParseOrigins(origins))
		req := httptest.NewRequest("OPTIONS", "/score", nil)
		req.Header["Origin"] = []string{origin}
		h := http.Header{}
		p.apply(h, req)
		for _, o := range ParseOrigins(origins) {
			if o == origin && origin != "" && h.Get("Access-Control-Allow-Origin") != origin {
				t.Fatalf("listed origin %q refused (policy %q)", origin, origins)
			}
		}
		p.remove(h)
		if len(h) != 0 {
			t.Fatalf("remove left %v", h)
		}
	})
}
