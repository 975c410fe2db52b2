package scoring

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkPythonEcho measures one request through ServeHTTP to a Python
// worker and back (no network), with as many clients as workers.
func BenchmarkPythonEcho(b *testing.B) {
	s := pyServer(b, "import json\ndef init(): pass\ndef run(d): return json.loads(d)\n", Config{Workers: 2}, nil)
	body := `{"data": [[1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]]}`
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("POST", "/score", strings.NewReader(body)))
			if rec.Code != 200 {
				b.Errorf("status %d: %s", rec.Code, rec.Body.String())
				return
			}
		}
	})
}

// BenchmarkGoHandler measures the Go-handler path through ServeHTTP.
func BenchmarkGoHandler(b *testing.B) {
	s := newReady(b, Config{Handler: func() Handler {
		return HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
	}})
	body := `{"data": [[1, 2, 3]]}`
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("POST", "/score", strings.NewReader(body)))
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
