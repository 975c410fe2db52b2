package otlpsink_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/scoring/otlpsink"
)

// receiver is an in-process OTLP/HTTP collector: it decodes the protobuf
// requests for /v1/traces and /v1/logs.
type receiver struct {
	mu    sync.Mutex
	spans []*spanSeen
	logs  []*logSeen
}

type spanSeen struct {
	name, traceID, spanID string
	parentID              string
	attrs                 map[string]string
	service               string
	start, end            uint64
	errStatus             bool
}

type logSeen struct {
	body, severity, traceID, spanID string
	attrs                           map[string]string
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
		}
	}
	return m
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request", 400)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rs := range req.GetResourceSpans() {
			svc := attrs(rs.GetResource().GetAttributes())["service.name"]
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					rc.spans = append(rc.spans, &spanSeen{name: sp.GetName(), traceID: hex.EncodeToString(sp.GetTraceId()),
						spanID: hex.EncodeToString(sp.GetSpanId()), parentID: hex.EncodeToString(sp.GetParentSpanId()), attrs: attrs(sp.GetAttributes()), service: svc,
						start: sp.GetStartTimeUnixNano(), end: sp.GetEndTimeUnixNano(), errStatus: sp.GetStatus().GetCode() == 2})
				}
			}
		}
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	case "/v1/logs":
		var req collogs.ExportLogsServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rl := range req.GetResourceLogs() {
			for _, sl := range rl.GetScopeLogs() {
				for _, lr := range sl.GetLogRecords() {
					rc.logs = append(rc.logs, &logSeen{body: lr.GetBody().GetStringValue(), severity: lr.GetSeverityText(),
						traceID: hex.EncodeToString(lr.GetTraceId()), spanID: hex.EncodeToString(lr.GetSpanId()), attrs: attrs(lr.GetAttributes())})
				}
			}
		}
		out, _ := proto.Marshal(&collogs.ExportLogsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	default:
		http.NotFound(w, r)
	}
}

func python(t *testing.T) string {
	p := os.Getenv("AKSML_TEST_PYTHON")
	if p == "" {
		p = "/usr/bin/python3"
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("Python interpreter %s is missing (run scripts/install-deps): %v", p, err)
	}
	return p
}

// TestScoredRequestReachesOTLPReceiver runs score.py on a replica whose
// telemetry goes to an in-process OTLP receiver: the request's span and the
// lines run() printed arrive, carrying the id the caller sent.
func TestScoredRequestReachesOTLPReceiver(t *testing.T) {
	rc := &receiver{}
	ts := httptest.NewServer(rc)
	defer ts.Close()
	sink, err := otlpsink.New(context.Background(), otlpsink.Options{Endpoint: ts.URL, ServiceName: "diabetes"})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Shutdown(context.Background())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(`
import sys
def init():
    pass
def run(raw_data):
    print("scoring", raw_data)
    print("careful", file=sys.stderr)
    if raw_data == "boom":
        raise ValueError("boom")
    return raw_data
`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := scoring.NewServer(scoring.Config{EntryScript: "score.py", SourceDir: dir, Interpreter: python(t),
		Telemetry: &scoring.Telemetry{Sink: sink, Service: "diabetes", Version: "blue", Replica: "diabetes-0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	const routerID = "0f8fad5b-d9cb-469f-a165-70867728950e"
	send := func(body string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/score", strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	if r := send("7", "x-ms-request-id", routerID, "x-ms-client-request-id", "caller-abc"); r.Code != 200 {
		t.Fatalf("status %d: %s", r.Code, r.Body)
	}
	if r := send("boom", "x-ms-client-request-id", "caller-def"); r.Code != 500 {
		t.Fatalf("status %d: %s", r.Code, r.Body)
	}
	// Close sends what is buffered.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if st := srv.TelemetryStats(); st.Failed != 0 || st.Dropped != 0 || st.Sent != st.Recorded {
		t.Fatalf("telemetry stats %+v", st)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.spans) != 2 {
		t.Fatalf("%d spans, want 2", len(rc.spans))
	}
	sp := rc.spans[0]
	if sp.attrs["aksml.client_request_id"] != "caller-abc" || sp.attrs["aksml.request_id"] != routerID ||
		sp.traceID != strings.ReplaceAll(routerID, "-", "") || sp.name != "POST /score" || sp.service != "diabetes" ||
		sp.attrs["http.response.status_code"] != "200" || sp.attrs["aksml.version"] != "blue" || sp.attrs["aksml.replica"] != "diabetes-0" ||
		sp.end <= sp.start || sp.errStatus {
		t.Fatalf("first span %+v", sp)
	}
	if sp2 := rc.spans[1]; sp2.attrs["aksml.client_request_id"] != "caller-def" || !sp2.errStatus || sp2.attrs["http.response.status_code"] != "500" {
		t.Fatalf("second span %+v", sp2)
	}
	var first []string
	var tb bool
	for _, l := range rc.logs {
		switch l.attrs["aksml.client_request_id"] {
		case "caller-abc":
			if l.traceID != sp.traceID || l.spanID != sp.spanID {
				t.Errorf("log %+v is not in the request's span %s/%s", l, sp.traceID, sp.spanID)
			}
			first = append(first, l.severity+" "+l.attrs["log.iostream"]+" "+l.body)
		case "caller-def":
			tb = tb || strings.Contains(l.body, "ValueError: boom")
		default:
			t.Errorf("log without the caller's id: %+v", l)
		}
	}
	if want := "INFO stdout scoring 7|WARN stderr careful"; strings.Join(first, "|") != want {
		t.Fatalf("logs of the first request %q, want %q", first, want)
	}
	if !tb {
		t.Fatal("the failed request's traceback is not among its logs")
	}
}

func TestIDs(t *testing.T) {
	tid, sid := otlpsink.IDs("0f8fad5b-d9cb-469f-a165-70867728950e")
	if tid.String() != "0f8fad5bd9cb469fa16570867728950e" || !sid.IsValid() {
		t.Fatalf("UUID: %s %s", tid, sid)
	}
	a, _ := otlpsink.IDs("caller-1")
	b, _ := otlpsink.IDs("caller-1")
	c, _ := otlpsink.IDs("caller-2")
	if a != b || a == c || !a.IsValid() {
		t.Fatalf("hashed ids %s %s %s", a, b, c)
	}
	z, _ := otlpsink.IDs("00000000-0000-0000-0000-000000000000")
	if !z.IsValid() {
		t.Fatal("the zero UUID gave an invalid trace id")
	}
}

func TestExportFailsWhenCollectorRefuses(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusBadRequest) }))
	defer ts.Close()
	sink, err := otlpsink.New(context.Background(), otlpsink.Options{Endpoint: ts.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = sink.Export(context.Background(), []scoring.TelemetryRecord{{Kind: scoring.TelemetryRequest, Time: time.Now(), Method: "POST", Path: "/score", Status: 200, RequestID: "x"}})
	if err == nil || !strings.Contains(err.Error(), "otlpsink: traces") {
		t.Fatalf("Export: %v", err)
	}
	if err := sink.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sink.Export(context.Background(), nil); err == nil {
		t.Fatal("Export after Shutdown succeeded")
	}
}

// TestTraceparentJoinsCallersTrace: a request that came with a valid
// traceparent is a span in the caller's trace, child of the caller's span,
// and the lines it printed are logs in that span; a request without one
// keeps its own trace, with no parent.
func TestTraceparentJoinsCallersTrace(t *testing.T) {
	rc := &receiver{}
	ts := httptest.NewServer(rc)
	defer ts.Close()
	sink, err := otlpsink.New(context.Background(), otlpsink.Options{Endpoint: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Shutdown(context.Background())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(`
def init():
    pass
def run(raw_data):
    print("scoring", raw_data)
    return raw_data
`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := scoring.NewServer(scoring.Config{EntryScript: "score.py", SourceDir: dir, Interpreter: python(t),
		Telemetry: &scoring.Telemetry{Sink: sink, Service: "svc"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	const ownID = "0f8fad5b-d9cb-469f-a165-70867728950e"
	for _, c := range []struct{ body, id, tp string }{
		{"traced", "traced-1", "00-" + callerTrace + "-" + callerSpan + "-01"},
		{"plain", ownID, "00-" + callerTrace + "-0000000000000000-01"}, // invalid: ignored
	} {
		req := httptest.NewRequest(http.MethodPost, "/score", strings.NewReader(c.body))
		req.Header.Set("x-ms-request-id", c.id)
		req.Header.Set("traceparent", c.tp)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: status %d", c.body, rec.Code)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	spans := map[string]*spanSeen{}
	for _, sp := range rc.spans {
		spans[sp.attrs["aksml.request_id"]] = sp
	}
	tr, pl := spans["traced-1"], spans[ownID]
	if tr == nil || pl == nil || len(rc.spans) != 2 {
		t.Fatalf("spans %+v", rc.spans)
	}
	_, ownSpan := otlpsink.IDs("traced-1")
	if tr.traceID != callerTrace || tr.parentID != callerSpan || tr.spanID != ownSpan.String() {
		t.Fatalf("traced span: trace %s parent %s span %s, want %s %s %s", tr.traceID, tr.parentID, tr.spanID, callerTrace, callerSpan, ownSpan)
	}
	if pl.traceID != strings.ReplaceAll(ownID, "-", "") || pl.parentID != "" {
		t.Fatalf("span without a valid traceparent: trace %s parent %q", pl.traceID, pl.parentID)
	}
	if len(rc.logs) != 2 {
		t.Fatalf("%d logs, want 2", len(rc.logs))
	}
	for _, l := range rc.logs {
		sp := spans[l.attrs["aksml.request_id"]]
		if sp == nil || l.traceID != sp.traceID || l.spanID != sp.spanID {
			t.Errorf("log %+v is not in its request's span", l)
		}
	}
}
