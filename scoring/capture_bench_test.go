package scoring

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// captureFrames are the D and L payloads a worker sends with each reply of
// bench/capture's echo score.py (two collect() calls and one print).
func captureFrames(tb testing.TB) (inputs, predictions, prints []byte) {
	rows, err := hex.DecodeString("db020000005b0300000067000000000000f83fe902000000fa0178db03000000e903000000670000000000001140fa0179")
	if err != nil {
		tb.Fatal(err)
	}
	const cid = "61affa82-ac0d-4e0a-8dc9-b175a70cfdf2"
	rec := func(designation string) []byte {
		meta := `{"model":"echo","designation":"` + designation + `","features":["a","b","c"]}`
		b := binary.BigEndian.AppendUint32(nil, uint32(len(meta)))
		b = append(b, meta...)
		b = append(b, 0x29, 0x03, 0xfa, 27)
		b = append(b, "2026-12-02T21:16:15.870624Z"...)
		b = append(b, 0xfa, byte(len(cid)))
		b = append(b, cid...)
		return append(b, rows...)
	}
	return rec("inputs"), rec("predictions"), printFrame(cid, "", 1.7e9, "o", "scored 2 rows\n")
}

// captureServer is a replica of an echo score.py in dir with dc and tel,
// not started: the caller hands it frames as its workers would.
func captureServer(tb testing.TB, dir string, dc *DataCollection, tel *Telemetry) *Server {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte("def init(): pass\ndef run(d): return d\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	s, err := NewServer(Config{EntryScript: "score.py", SourceDir: dir, DataCollection: dc, Telemetry: tel})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// cpuNow is the CPU time (user and system) of this process.
func cpuNow(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCaptureGoSide measures the Go side of one bench/capture request
// with data collection and telemetry on: its two records and its printed
// line handed over as the reply is read, its request record, and the
// background writers' work for them (rows written to a local store, JSON
// lines to a file). cpu-ns/op is the process's CPU per request, the
// writers' included.
func BenchmarkCaptureGoSide(b *testing.B) {
	dir := b.TempDir()
	sink, err := NewJSONLinesSink(filepath.Join(dir, "telemetry.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	s := captureServer(b, dir, &DataCollection{Store: &LocalModelDataStore{Root: filepath.Join(dir, "ws")}, Service: "capture"},
		&Telemetry{Sink: sink, Service: "capture", Version: "capture", Replica: "capture-0"})
	inputs, predictions, prints := captureFrames(b)
	held := []sideFrame{{kindRecord, inputs}, {kindRecord, predictions}, {kindPrints, prints}}
	b.ReportAllocs()
	cpu := cpuNow(b)
	b.ResetTimer()
	for b.Loop() {
		// At the pace the writers keep up with, as in the benchmark
		// (nothing dropped): a dropped record costs nothing.
		for s.dc.q.len() > s.dc.q.limit/2 || s.tel.q.len() > s.tel.q.limit/2 {
			time.Sleep(100 * time.Microsecond)
		}
		s.takeSides(held)
		start := time.Now()
		s.tel.offerRequest(start, time.Since(start), 200, "POST", "/score", "61affa82-ac0d-4e0a-8dc9-b175a70cfdf2", "", traceContext{})
	}
	s.dc.close()
	s.tel.close()
	b.StopTimer()
	b.ReportMetric(float64(cpuNow(b)-cpu)/float64(b.N), "cpu-ns/op")
	if st := s.dc.stats(); st.Dropped+st.Failed > 0 {
		b.Logf("data collection %+v", st)
	}
}

// BenchmarkDCRowsRecord measures writing one record of bench/capture as
// CSV rows.
func BenchmarkDCRowsRecord(b *testing.B) {
	inputs, _, _ := captureFrames(b)
	n := binary.BigEndian.Uint32(inputs)
	values := inputs[4+n:]
	var d pyDecoder
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = d.appendRows(dst[:0], values)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTelemetryRequestPath measures what request telemetry adds to a
// request on the request path (a Go handler, telemetry off and on; the
// exporter's work is not counted in ns/op but in cpu-ns/op).
func BenchmarkTelemetryRequestPath(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			cfg := Config{Handler: func() Handler {
				return HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
			}}
			if on {
				sink, err := NewJSONLinesSink(filepath.Join(b.TempDir(), "t.jsonl"))
				if err != nil {
					b.Fatal(err)
				}
				defer sink.Close()
				cfg.Telemetry = &Telemetry{Sink: sink, Service: "svc", Replica: "r-0"}
			}
			s := newReady(b, cfg)
			body := `{"data": [[1, 2, 3]]}`
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "/score", strings.NewReader(body))
			b.ReportAllocs()
			cpu := cpuNow(b)
			for b.Loop() {
				if on {
					for s.tel.q.len() > s.tel.q.limit/2 {
						time.Sleep(100 * time.Microsecond)
					}
				}
				rec.Body.Reset()
				clear(rec.Header())
				req.Body = io.NopCloser(strings.NewReader(body))
				s.ServeHTTP(rec, req)
			}
			b.ReportMetric(float64(cpuNow(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkLocalStoreAppend measures one Append of a batch of rows (128
// requests' worth of bench/capture's inputs) to a local store's file.
func BenchmarkLocalStoreAppend(b *testing.B) {
	store := &LocalModelDataStore{Root: b.TempDir()}
	defer store.Close()
	row := "2026-12-02T21:16:15.870624Z,61affa82-ac0d-4e0a-8dc9-b175a70cfdf2,1.5,2,x\n"
	rows := []byte(strings.Repeat(row, 256))
	header := []byte("$aml_dc_scoring_timestamp,$aml_dc_correlation_id,a,b,c\n")
	name := "modeldata/default/default/default/capture/echo/default/inputs/2026/12/02/data.csv"
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuNow(b)
	for b.Loop() {
		if err := store.Append(ctx, name, header, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuNow(b)-cpu)/float64(b.N), "cpu-ns/op")
}
