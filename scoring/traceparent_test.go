package scoring

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	const tid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"00-" + tid + "-" + pid + "-01", true},
		{"00-" + tid + "-" + pid + "-00", true},
		{"01-" + tid + "-" + pid + "-01", true},                 // a later version, as version 00
		{"cc-" + tid + "-" + pid + "-01-what-the-future", true}, // a later version may add fields
		{"00-" + tid + "-" + pid + "-01-extra", false},          // version 00 has nothing more
		{"cc-" + tid + "-" + pid + "-01extra", false},           // more must follow a dash
		{"ff-" + tid + "-" + pid + "-01", false},                // version ff is invalid
		{"00-" + strings.ToUpper(tid) + "-" + pid + "-01", false},
		{"00-" + tid + "-" + strings.ToUpper(pid[:14]) + "AB-01", false},
		{"00-00000000000000000000000000000000-" + pid + "-01", false},
		{"00-" + tid + "-0000000000000000-01", false},
		{"00-" + tid + "-" + pid + "-0g", false},
		{"0g-" + tid + "-" + pid + "-01", false},
		{"00-" + tid[:31] + "-" + pid + "-01", false},
		{"00_" + tid + "_" + pid + "_01", false},
		{"00-" + tid + "-" + pid + "-1", false},
		{" 00-" + tid + "-" + pid + "-01", false},
		{"", false},
	} {
		got, ok := parseTraceparent(tc.in)
		if ok != tc.ok {
			t.Errorf("%q: ok %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if ok && (got.traceID != tid || got.parentID != pid) {
			t.Errorf("%q: %+v", tc.in, got)
		}
	}
	// A repeated header is not trusted.
	r, _ := http.NewRequest(http.MethodPost, "/score", nil)
	r.Header.Add("traceparent", "00-"+tid+"-"+pid+"-01")
	if _, ok := requestTrace(r); !ok {
		t.Fatal("one valid header was refused")
	}
	r.Header.Add("traceparent", "00-"+tid+"-"+pid+"-01")
	if _, ok := requestTrace(r); ok {
		t.Fatal("a repeated header was taken")
	}
}

// FuzzParseTraceparent: whatever the header, the parser does not panic,
// and what it takes has the header's ids as lowercase hex, not all zero.
func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		tc, ok := parseTraceparent(v)
		if !ok {
			if tc != (traceContext{}) {
				t.Fatalf("%q refused with %+v", v, tc)
			}
			return
		}
		if len(tc.traceID) != 32 || len(tc.parentID) != 16 || !isLowerHex(tc.traceID) || !isLowerHex(tc.parentID) ||
			allZero(tc.traceID) || allZero(tc.parentID) || v[3:35] != tc.traceID || v[36:52] != tc.parentID ||
			v[:2] == "ff" || (v[:2] == "00" && len(v) != 55) {
			t.Fatalf("%q gave %+v", v, tc)
		}
	})
}

// A request with a valid traceparent is recorded in the caller's trace
// (the request record and the lines it printed, in the JSON-lines file);
// one with an invalid header, or none, carries no trace.
func TestTelemetryCarriesTraceparent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.jsonl")
	sink, err := NewJSONLinesSink(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	s := pyServer(t, `
def init():
    pass
def run(raw_data):
    print("scoring", raw_data)
    return raw_data
`, Config{Telemetry: &Telemetry{Sink: sink, Service: "svc"}}, nil)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, c := range []struct{ body, tp string }{{"traced", tp}, {"invalid", strings.ToUpper(tp)}, {"none", ""}} {
		hdr := []string{"x-ms-request-id", "id-" + c.body}
		if c.tp != "" {
			hdr = append(hdr, "traceparent", c.tp)
		}
		if r := do(s, http.MethodPost, "/score", c.body, hdr...); r.status != 200 {
			t.Fatalf("%s: status %d", c.body, r.status)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadTelemetry(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.RequestID+" "+r.Kind]++
		wantTrace, wantParent := "", ""
		if r.RequestID == "id-traced" {
			wantTrace, wantParent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		}
		if r.TraceID != wantTrace || r.ParentSpanID != wantParent {
			t.Errorf("record %+v: trace %q parent %q, want %q %q", r, r.TraceID, r.ParentSpanID, wantTrace, wantParent)
		}
	}
	for _, id := range []string{"id-traced", "id-invalid", "id-none"} {
		if seen[id+" request"] != 1 || seen[id+" print"] != 1 {
			t.Errorf("%s: records %v", id, seen)
		}
	}
	if n := s.tel.traced.Load(); n != 0 {
		t.Fatalf("%d traces still held after the requests", n)
	}
}
