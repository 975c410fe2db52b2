package scoring

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// memorySink keeps every record it is given.
type memorySink struct {
	mu   sync.Mutex
	recs []TelemetryRecord
}

func (m *memorySink) Export(ctx context.Context, recs []TelemetryRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, recs...)
	return nil
}

func (m *memorySink) records() []TelemetryRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]TelemetryRecord(nil), m.recs...)
}

const telScript = `
import os, sys, json, logging
from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("m", designation="inputs", feature_names=["x"])
    logging.basicConfig(level=logging.INFO)
    print("init line")

def run(raw_data):
    if raw_data == "env":
        return os.environ["AML_APP_INSIGHTS_ENABLED"]
    print("scoring", raw_data)
    sys.stderr.write("warn one\nwarn two\n")
    logging.getLogger("score").info("logged")
    dc.collect([[raw_data]])
    if raw_data == "boom":
        raise ValueError("bad input")
    return raw_data
`

func TestTelemetryRecordsRequestsAndPrints(t *testing.T) {
	sink := &memorySink{}
	root := t.TempDir()
	s := pyServer(t, telScript, Config{
		Telemetry:      &Telemetry{Sink: sink, Service: "svc", Version: "blue", Replica: "svc-0"},
		DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0),
	}, nil)
	if r := do(s, http.MethodPost, "/score", "env"); r.status != 200 || r.body != `"true"` {
		t.Fatalf("AML_APP_INSIGHTS_ENABLED: %d %s", r.status, r.body)
	}
	// Through the router: x-ms-request-id is the router's, the caller's id
	// comes as x-ms-client-request-id.
	ok := do(s, http.MethodPost, "/score", "7", "x-ms-request-id", "router-id-1", "x-ms-client-request-id", "caller-id-1")
	boom := do(s, http.MethodPost, "/score", "boom", "x-request-id", "caller-id-2")
	if ok.status != 200 || boom.status != 500 {
		t.Fatalf("statuses %d %d", ok.status, boom.status)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recs := sink.records()
	var reqs []TelemetryRecord
	prints := map[string][]string{}
	for _, r := range recs {
		if r.Service != "svc" || r.Version != "blue" || r.Replica != "svc-0" {
			t.Errorf("record %+v: service, version or replica wrong", r)
		}
		switch r.Kind {
		case TelemetryRequest:
			reqs = append(reqs, r)
		case TelemetryPrint:
			prints[r.RequestID] = append(prints[r.RequestID], r.Stream+": "+r.Message)
			if r.Time.IsZero() {
				t.Errorf("print %+v has no time", r)
			}
		}
	}
	if len(reqs) != 3 {
		t.Fatalf("%d request records, want 3: %+v", len(reqs), recs)
	}
	r1, r2 := reqs[1], reqs[2]
	if r1.RequestID != "router-id-1" || r1.ClientRequestID != "caller-id-1" || r1.Status != 200 || r1.Method != "POST" || r1.Path != "/score" || r1.Duration <= 0 {
		t.Errorf("request record %+v", r1)
	}
	if r2.RequestID != boom.header.Get("x-ms-request-id") || r2.ClientRequestID != "caller-id-2" || r2.Status != 500 {
		t.Errorf("request record %+v (response ids %v)", r2, boom.header)
	}
	want := []string{"stdout: scoring 7", "stderr: warn one", "stderr: warn two", "stderr: INFO:score:logged"}
	if got := prints["router-id-1"]; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("prints of the first request:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := strings.Join(prints[r2.RequestID], "\n"); !strings.Contains(got, "stderr: Encountered Exception: Traceback") || !strings.Contains(got, "ValueError: bad input") {
		t.Errorf("prints of the failed request lack its traceback:\n%s", got)
	}
	for id, p := range prints {
		if id != "router-id-1" && id != r2.RequestID {
			t.Errorf("prints under request id %q: %v", id, p)
		}
	}
	// ModelDataCollector's correlation id is the request's id.
	dir := filepath.Join(root, "modeldata", "sub", "rg", "ws", "svc", "m", "default", "inputs")
	var rows []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rows = append(rows, readLines(t, p)[1:]...)
		}
		return err
	})
	if len(rows) != 2 || strings.Split(rows[0], ",")[1] != "router-id-1" || strings.Split(rows[1], ",")[1] != r2.RequestID {
		t.Fatalf("collected rows %q: want the correlation ids router-id-1 and %s", rows, r2.RequestID)
	}
	if st := s.TelemetryStats(); st.Recorded != int64(len(recs)) || st.Sent != st.Recorded || st.Dropped != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v with %d records", st, len(recs))
	}
}

func TestTelemetryOffSetsVariableFalse(t *testing.T) {
	s := pyServer(t, telScript, Config{}, nil)
	if r := do(s, http.MethodPost, "/score", "env"); r.status != 200 || r.body != `"false"` {
		t.Fatalf("AML_APP_INSIGHTS_ENABLED: %d %s", r.status, r.body)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("stats %+v with everything off", st)
	}
}

func TestTelemetryLosesNothingWhenSinkKeepsUp(t *testing.T) {
	n := 10000
	if raceEnabled || testing.Short() {
		n = 2000
	}
	sink := &memorySink{}
	s := pyServer(t, `
def init():
    pass
def run(raw_data):
    return "ok"
`, Config{Telemetry: &Telemetry{Sink: sink}, Workers: 2}, nil)
	postConcurrently(t, s, n, func(i int) (string, []string) {
		return "x", []string{"x-ms-client-request-id", fmt.Sprint("c-", i)}
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.TelemetryStats()
	if st != (TelemetryStats{Recorded: int64(n), Sent: int64(n)}) {
		t.Fatalf("stats %+v, want %d recorded and sent", st, n)
	}
	seen := map[string]bool{}
	for _, r := range sink.records() {
		seen[r.ClientRequestID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct caller ids in the sink, want %d", len(seen), n)
	}
}

// blockedSink holds every Export until release is closed.
type blockedSink struct {
	release chan struct{}
	inner   TelemetrySink
}

func (b *blockedSink) Export(ctx context.Context, recs []TelemetryRecord) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.inner.Export(ctx, recs)
}

func TestTelemetrySlowSinkDropsAndCountsWithoutSlowingRequests(t *testing.T) {
	const n, buffer = 300, 10
	sink := &blockedSink{release: make(chan struct{}), inner: &memorySink{}}
	s := pyServer(t, `
def init():
    pass
def run(raw_data):
    print("line", raw_data)
    return "ok"
`, Config{Telemetry: &Telemetry{Sink: sink, Buffer: buffer}}, nil)
	// The sink never returns while the requests run: each still completes,
	// so no request waits for it.
	var lat []time.Duration
	for i := range n {
		start := time.Now()
		if r := do(s, http.MethodPost, "/score", fmt.Sprint(i)); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
		lat = append(lat, time.Since(start))
	}
	// A request and its printed line each: 2n records.
	eventually(t, "every record to reach the server", func() bool { return s.TelemetryStats().Recorded == 2*n })
	close(sink.release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.TelemetryStats()
	if st.Sent+st.Dropped+st.Failed != st.Recorded || st.Dropped == 0 || st.Failed != 0 {
		t.Fatalf("stats %+v: want sent + dropped == recorded == %d, some dropped", st, 2*n)
	}
	// The sink holds one batch (at most what the buffer held, plus one)
	// while the buffer fills again.
	if st.Sent > 2*buffer+1 {
		t.Fatalf("stats %+v: more sent than the buffer (%d) and the batch in the sink's hands", st, buffer)
	}
	if !logsContain(s, "telemetry: the buffer of 10 records is full") {
		t.Fatalf("no drop warning in the log:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("%d requests with a blocked sink: p50 %v, p99 %v; %+v", n, lat[n/2], lat[n*99/100], st)
}

// failingSink refuses everything.
type failingSink struct{}

func (failingSink) Export(context.Context, []TelemetryRecord) error { return errors.New("sink down") }

func TestTelemetryGoHandlerAndFailingSink(t *testing.T) {
	s := newReady(t, Config{Handler: func() Handler {
		return HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) {
			if string(in) == "fail" {
				return nil, errors.New("no")
			}
			return in, nil
		})
	}, Telemetry: &Telemetry{Sink: failingSink{}, Service: "go"}})
	do(s, http.MethodPost, "/score", "fine")
	do(s, http.MethodPost, "/score", "fail")
	eventually(t, "both records to fail", func() bool { return s.TelemetryStats().Failed == 2 })
	if !logsContain(s, "record(s) could not be sent: sink down") {
		t.Fatalf("no failure in the log:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
}

func TestTelemetryConfigErrors(t *testing.T) {
	_, err := NewServer(Config{EntryScript: "/x/score.py", Telemetry: &Telemetry{Buffer: -1}})
	for _, want := range []string{"Telemetry.Sink: is nil", "Telemetry.Buffer: -1 is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestJSONLinesSinkRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "telemetry.jsonl")
	sink, err := NewJSONLinesSink(p)
	if err != nil {
		t.Fatal(err)
	}
	in := []TelemetryRecord{
		{Kind: TelemetryRequest, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Duration: 1500 * time.Microsecond, Status: 200,
			Method: "POST", Path: "/score", Service: "s", Version: "v", Replica: "r", RequestID: "id", ClientRequestID: "cid"},
		{Kind: TelemetryPrint, Time: time.Date(2026, 1, 2, 3, 4, 5, 7, time.UTC), Service: "s", RequestID: "id", Stream: "stderr", Message: "<hi> & \"x\""},
	}
	if err := sink.Export(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Export(context.Background(), in); err == nil {
		t.Fatal("Export after Close succeeded")
	}
	out, err := ReadTelemetry(p)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("read back\n%+v\nwant\n%+v", out, in)
	}
	if _, err := readTelemetry(bufio.NewReader(strings.NewReader("{\"kind\":\"request\"}\n{\"kind\":\"x\"}\n"))); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad kind: %v", err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	sink := &memorySink{}
	s := newReady(t, Config{Handler: func() Handler { return echoHandler() },
		Telemetry: &Telemetry{Sink: sink}, MetricsKey: "k3y"})
	do(s, http.MethodPost, "/score", "x")
	eventually(t, "the record to be sent", func() bool { return s.TelemetryStats().Sent == 1 })
	get := func(remote, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.RemoteAddr = remote
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	if r := get("192.0.2.1:1234", ""); r.Code != 404 {
		t.Fatalf("remote caller without the key: %d", r.Code)
	}
	if r := get("192.0.2.1:1234", "Bearer nope"); r.Code != 404 {
		t.Fatalf("remote caller with a wrong key: %d", r.Code)
	}
	for _, r := range []*httptest.ResponseRecorder{get("127.0.0.1:1234", ""), get("[::1]:1234", ""), get("192.0.2.1:1234", "Bearer k3y")} {
		if r.Code != 200 || !strings.Contains(r.Body.String(), `aksml_replica_telemetry_records_total{outcome="sent"} 1`) {
			t.Fatalf("metrics: %d\n%s", r.Code, r.Body.String())
		}
		st, err := ParseMetrics(r.Body.Bytes())
		if err != nil || st != (Stats{Telemetry: TelemetryStats{Recorded: 1, Sent: 1}}) {
			t.Fatalf("ParseMetrics: %+v, %v", st, err)
		}
		if strings.Contains(r.Body.String(), "model_data") {
			t.Fatalf("model data counters with collection off:\n%s", r.Body.String())
		}
	}
}

// printFrame builds the payload of an L frame as host.py sends it: the ids,
// the start time, then (kind, text) parts.
func printFrame(id, client string, start float64, parts ...string) []byte {
	b := append([]byte{byte(len(id))}, id...)
	b = append(b, byte(len(client)))
	b = append(b, client...)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(start))
	for i := 0; i+1 < len(parts); i += 2 {
		b = append(b, parts[i][0])
		b = binary.BigEndian.AppendUint32(b, uint32(len(parts[i+1])))
		b = append(b, parts[i+1]...)
	}
	return b
}

// The texts of an L frame become lines: consecutive writes to one stream
// are joined (print writes its arguments one by one), a final newline ends
// the last line, and the characters not kept are said in a last line.
func TestPrintFrameLines(t *testing.T) {
	s := &Server{cfg: Config{Clock: clocktesting.NewFakeClock(time.Unix(7, 0)), Logger: slog.New(slog.DiscardHandler)}, logs: newLogBuffer(10, nil)}
	tel := &telemetry{cfg: &Telemetry{Buffer: 100, Service: "svc"}, srv: s, q: newCaptureLog(100)}
	tel.offerPrints(printFrame("rid", "cid", 1.5, "o", "scored", "o", " ", "o", "2\n", "e", "warn", "e", " one\n\nwarn two", "o", "é\n", "l", "70000"), s.cfg.Clock.Now())
	var got []string
	for _, r := range tel.takeRecords() {
		if r.RequestID != "rid" || r.ClientRequestID != "cid" || !r.Time.Equal(time.Unix(1, 5e8)) || r.Service != "svc" {
			t.Errorf("record %+v", r)
		}
		got = append(got, r.Stream+": "+r.Message)
	}
	want := []string{"stdout: scored 2", "stderr: warn one", "stderr: ", "stderr: warn two", "stdout: é",
		"stderr: [aksml: 70000 more characters printed during this request are in the replica log only]"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A full buffer: a frame's lines are kept or dropped together, and
	// counted either way.
	tel = &telemetry{cfg: &Telemetry{Buffer: 4}, srv: s, q: newCaptureLog(4)}
	tel.offerPrints(printFrame("a", "", 1.5, "o", "1\n2\n3\n"), s.cfg.Clock.Now())
	tel.offerPrints(printFrame("b", "", 1.5, "o", "4\n5\n"), s.cfg.Clock.Now())
	tel.offerPrints(printFrame("c", "", 1.5, "e", "6\n"), s.cfg.Clock.Now())
	if st := tel.stats(); tel.q.len() != 4 || st != (TelemetryStats{Recorded: 6, Dropped: 2}) {
		t.Fatalf("stats %+v with %d buffered", st, tel.q.len())
	}
	got = got[:0]
	for _, r := range tel.takeRecords() {
		got = append(got, r.RequestID+" "+r.Stream+": "+r.Message)
	}
	if want := "a stdout: 1|a stdout: 2|a stdout: 3|c stderr: 6"; strings.Join(got, "|") != want {
		t.Fatalf("records %q, want %q", strings.Join(got, "|"), want)
	}
	// An id of 255 bytes, the most its length byte holds.
	long := strings.Repeat("i", 255)
	tel = &telemetry{cfg: &Telemetry{Buffer: 100}, srv: s, q: newCaptureLog(100)}
	tel.offerPrints(printFrame(long, long, 1.5, "o", "x\n"), s.cfg.Clock.Now())
	if r := tel.takeRecords(); len(r) != 1 || r[0].RequestID != long || r[0].ClientRequestID != long || r[0].Message != "x" {
		t.Fatalf("records %+v", r)
	}
	// A frame cut short: the lines before the fault, and one failed record.
	tel = &telemetry{cfg: &Telemetry{Buffer: 100}, srv: s, q: newCaptureLog(100)}
	tel.offerPrints(printFrame("rid", "", 0, "o", "kept\n", "w", "x")[:], s.cfg.Clock.Now())
	if st := tel.stats(); tel.q.len() != 1 || st.Failed != 1 || st.Recorded != 2 {
		t.Fatalf("stats %+v with %d buffered", st, tel.q.len())
	}
	if r := tel.takeRecords()[0]; !r.Time.Equal(time.Unix(7, 0)) || r.Message != "kept" {
		t.Fatalf("record %+v: want the server's time for a frame without one", r)
	}
}

// The records and printed lines of a request whose reply is an AMLResponse
// (one frame) or a streamed generator (chunks, then the end) arrive with
// that reply, under the request's id.
func TestTelemetryAndRecordsWithRawAndStreamedReplies(t *testing.T) {
	sink := &memorySink{}
	root := t.TempDir()
	s := pyServer(t, `
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("m", designation="inputs")

def chunks():
    for i in range(3):
        print("chunk", i)
        dc.collect([["streamed", i]])
        yield "c%d\n" % i

@rawhttp
def run(request):
    kind = request.args.get("kind", "")
    print("serving", kind)
    dc.collect([[kind, 0]])
    if kind == "stream":
        return AMLResponse(chunks(), 200)
    return AMLResponse("raw body", 201)
`, Config{Telemetry: &Telemetry{Sink: sink}, DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0)}, nil)
	raw := do(s, http.MethodPost, "/score?kind=raw", "x", "x-ms-request-id", "raw-id")
	stream := do(s, http.MethodPost, "/score?kind=stream", "x", "x-ms-request-id", "stream-id")
	if raw.status != 201 || raw.body != "raw body" || stream.status != 200 || stream.body != "c0\nc1\nc2\n" {
		t.Fatalf("raw %d %q, stream %d %q", raw.status, raw.body, stream.status, stream.body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	prints := map[string][]string{}
	for _, r := range sink.records() {
		if r.Kind == TelemetryPrint {
			prints[r.RequestID] = append(prints[r.RequestID], r.Message)
		}
	}
	if got := strings.Join(prints["raw-id"], "|"); got != "serving raw" {
		t.Errorf("raw request's lines %q", got)
	}
	if got := strings.Join(prints["stream-id"], "|"); got != "serving stream|chunk 0|chunk 1|chunk 2" {
		t.Errorf("streamed request's lines %q", got)
	}
	var rows []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rows = append(rows, readLines(t, p)...)
		}
		return err
	})
	sort.Strings(rows)
	var got []string
	for _, r := range rows {
		f := strings.SplitN(r, ",", 3)
		got = append(got, f[1]+","+f[2])
	}
	want := "raw-id,raw,0|stream-id,stream,0|stream-id,streamed,0|stream-id,streamed,1|stream-id,streamed,2"
	sort.Strings(got)
	if strings.Join(got, "|") != want {
		t.Fatalf("rows %q, want %q", got, want)
	}
	if st := s.Stats(); st.DataCollection.Written != 5 || st.Telemetry.Sent != st.Telemetry.Recorded || st.Telemetry.Recorded != 2+5 {
		t.Fatalf("stats %+v", st)
	}
}
