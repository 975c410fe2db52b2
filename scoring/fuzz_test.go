package scoring

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
