package scoring

import (
	"bufio"
	"bytes"
	"log/slog"
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
// records or one failed record, and the counts add up.
func FuzzPrintFrame(f *testing.F) {
	f.Add([]byte(`{"id":"a","client":"b","t":1.5,"lines":[["stdout","x"],["stderr","y"]]}`))
	f.Add([]byte(`{"lines":[["weird","x"]],"t":1e300}`))
	f.Add([]byte(`{"lines":[[]]}`))
	f.Add([]byte(`nope`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		s := &Server{cfg: Config{Clock: clocktesting.NewFakeClock(time.Unix(0, 0)), Logger: slog.New(slog.DiscardHandler)}, logs: newLogBuffer(10, nil)}
		tel := &telemetry{cfg: &Telemetry{Buffer: 1 << 16}, srv: s, ch: make(chan TelemetryRecord, 1<<16)}
		tel.offerPrints(payload)
		st := tel.stats()
		if int64(len(tel.ch))+st.Failed+st.Dropped != st.Recorded {
			t.Fatalf("stats %+v with %d buffered", st, len(tel.ch))
		}
		close(tel.ch)
		for r := range tel.ch {
			if r.Kind != TelemetryPrint || (r.Stream != "stdout" && r.Stream != "stderr") {
				t.Fatalf("record %+v", r)
			}
		}
	})
}
