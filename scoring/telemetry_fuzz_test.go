package scoring

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// FuzzParseMetrics: any text parses or fails cleanly, and what
// WriteMetrics writes parses back to the same counts.
func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte("aksml_replica_telemetry_records_total{outcome=\"sent\"} 3\n"))
	f.Add([]byte("# HELP x\naksml_replica_model_data_records_total{outcome=\"dropped\"} -1\n"))
	f.Add([]byte("a{outcome=\"x\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		st, err := ParseMetrics(text)
		if err != nil {
			return
		}
		s := &Server{tel: &telemetry{}, dc: &collector{}}
		s.tel.recorded.Store(st.Telemetry.Recorded)
		s.tel.sent.Store(st.Telemetry.Sent)
		s.tel.dropped.Store(st.Telemetry.Dropped)
		s.tel.failed.Store(st.Telemetry.Failed)
		s.dc.collected.Store(st.DataCollection.Collected)
		s.dc.written.Store(st.DataCollection.Written)
		s.dc.dropped.Store(st.DataCollection.Dropped)
		s.dc.failed.Store(st.DataCollection.Failed)
		var b bytes.Buffer
		_ = s.WriteMetrics(&b)
		back, err := ParseMetrics(b.Bytes())
		if err != nil || back != st {
			t.Fatalf("round trip: %+v → %q → %+v, %v", st, b.String(), back, err)
		}
	})
}

// FuzzReadTelemetry: a JSON-lines file never panics the reader, and every
// record it returns has a known kind.
func FuzzReadTelemetry(f *testing.F) {
	f.Add("{\"kind\":\"request\",\"request_id\":\"a\"}\n{\"kind\":\"print\",\"message\":\"x\"}\n")
	f.Add("{\"kind\":\"request\",\"time\":\"not a time\"}\n")
	f.Add("\n\n{")
	f.Fuzz(func(t *testing.T, text string) {
		recs, _ := readTelemetry(bufio.NewReader(strings.NewReader(text)))
		for _, r := range recs {
			if r.Kind != TelemetryRequest && r.Kind != TelemetryPrint {
				t.Fatalf("record of kind %q", r.Kind)
			}
		}
	})
}

// FuzzPrintFrame: a worker's L frame, whatever its bytes, becomes print
// records, or the records of its lines before a fault and one failed
// record, and the counts add up.
func FuzzPrintFrame(f *testing.F) {
	f.Add(printFrame("a", "b", 1.5, "o", "x\n", "e", "y\nz", "e", "\n"))
	f.Add(printFrame("", "", 1e300, "l", "12"))
	f.Add(printFrame("a", "", 0, "w", "x"))
	f.Add([]byte("nope"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		s := &Server{cfg: Config{Clock: clocktesting.NewFakeClock(time.Unix(0, 0)), Logger: slog.New(slog.DiscardHandler)}, logs: newLogBuffer(10, nil)}
		tel := &telemetry{cfg: &Telemetry{Buffer: 1 << 16}, srv: s, q: newCaptureLog(1 << 16)}
		tel.offerPrints(payload, time.Unix(0, 0))
		st := tel.stats()
		waiting := tel.q.len()
		if int64(waiting)+st.Failed+st.Dropped != st.Recorded || st.Failed > 1 {
			t.Fatalf("stats %+v with %d buffered", st, waiting)
		}
		// The exporter makes as many records as the hand-over counted.
		recs := tel.takeRecords()
		if len(recs) != waiting {
			t.Fatalf("%d records made of %d counted", len(recs), waiting)
		}
		for _, r := range recs {
			if r.Kind != TelemetryPrint || (r.Stream != "stdout" && r.Stream != "stderr") {
				t.Fatalf("record %+v", r)
			}
		}
	})
}

// FuzzRecordJSON: the JSON-lines sink's encoder writes what encoding/json
// writes (without HTML escaping), byte for byte.
func FuzzRecordJSON(f *testing.F) {
	f.Add("request", int64(1767323045000000006), int64(1500000), 200, "POST", "/score", "svc", "id", "<hi> & \"x\"\n\t\x01\u2028\xff")
	f.Add("print", int64(-62135596800), int64(0), 0, "", "", "", "", "")
	f.Fuzz(func(t *testing.T, kind string, ns, dur int64, status int, method, path, service, id, msg string) {
		r := TelemetryRecord{Kind: kind, Time: time.Unix(0, ns).In(time.FixedZone("z", int(dur%50000))), Duration: time.Duration(dur),
			Status: status, Method: method, Path: path, Service: service, Version: msg, Replica: path,
			RequestID: id, ClientRequestID: method, TraceID: path, ParentSpanID: id, Stream: service, Message: msg}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&r); err != nil {
			t.Skip(err) // a time json refuses (a year beyond 9999)
		}
		if got := append(appendRecordJSON(nil, &r), '\n'); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("got\n%s\nwant\n%s", got, want.Bytes())
		}
	})
}

// FuzzRFC3339Cache: the sink's time formatting, which remembers the last
// second, writes what time.RFC3339Nano writes, for times in turn in the
// same second or not, and in the same location or not.
func FuzzRFC3339Cache(f *testing.F) {
	f.Add(int64(1767323045000000006), int64(1767323045999999999), int64(1767323046000000000), 0, 3600)
	f.Add(int64(-62135596800000000000/1000), int64(0), int64(1), -19800, 0)
	f.Add(int64(1767323045123000000), int64(1767323045123000000), int64(1767323045100000000), 45296, 45296)
	f.Fuzz(func(t *testing.T, a, b, c int64, offA, offB int) {
		var cache rfc3339Cache
		locA, locB := time.FixedZone("a", offA%200000), time.FixedZone("b", offB%200000)
		for _, tm := range []time.Time{time.Unix(0, a).In(locA), time.Unix(0, b).In(locA), time.Unix(0, b).In(locB),
			time.Unix(0, c).In(locB), time.Unix(0, c), time.Unix(0, a).UTC(), time.Unix(0, a).In(locB), time.Unix(0, a)} {
			want := tm.AppendFormat(nil, time.RFC3339Nano)
			if got := cache.appendTime(nil, tm); !bytes.Equal(got, want) {
				t.Fatalf("%s: got %s", want, got)
			}
		}
	})
}

// plainJSON8 tells, for eight bytes, what a byte at a time tells.
func TestPlainJSON8(t *testing.T) {
	plain := func(s string) bool {
		for i := range len(s) {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
				return false
			}
		}
		return true
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, fill := range []byte{' ', 'a', '~', '!', '#', '[', ']'} {
		for pos := range 8 {
			for c := range 256 {
				b := bytes.Repeat([]byte{fill}, 8)
				b[pos] = byte(c)
				// And another byte elsewhere, at random.
				for _, other := range []int{-1, rng.IntN(8)} {
					if other >= 0 {
						b[other] = byte(rng.IntN(256))
					}
					if got, want := plainJSON8(string(b)), plain(string(b)); got != want {
						t.Fatalf("%q: %v, want %v", b, got, want)
					}
				}
			}
		}
	}
	for range 100000 {
		var b [8]byte
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(2) == 0 {
				b[i] = byte(0x20 + rng.IntN(0x60))
			}
		}
		if got, want := plainJSON8(string(b[:])), plain(string(b[:])); got != want {
			t.Fatalf("%q: %v, want %v", b, got, want)
		}
	}
}
