package scoring

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Stats are a replica's data collection and telemetry counters.
type Stats struct {
	DataCollection DataCollectionStats
	Telemetry      TelemetryStats
}

// Stats returns the replica's counters.
func (s *Server) Stats() Stats {
	return Stats{DataCollection: s.DataCollectionStats(), Telemetry: s.TelemetryStats()}
}

// WriteMetrics writes the replica's counters in the Prometheus text format
// (version 0.0.4), as GET /metrics serves them:
//
//	aksml_replica_model_data_records_total{outcome="collected|written|dropped|failed"}
//	aksml_replica_telemetry_records_total{outcome="recorded|sent|dropped|failed"}
//
// Both are counters of records since the replica started; a family is
// written only when its feature is on.
func (s *Server) WriteMetrics(w io.Writer) error {
	var b bytes.Buffer
	if s.dc != nil {
		st := s.dc.stats()
		b.WriteString("# HELP aksml_replica_model_data_records_total ModelDataCollector records by outcome: collected reached the replica, written are in the store, dropped found the buffer full, failed were refused or could not be written.\n")
		b.WriteString("# TYPE aksml_replica_model_data_records_total counter\n")
		for _, kv := range []struct {
			k string
			v int64
		}{{"collected", st.Collected}, {"written", st.Written}, {"dropped", st.Dropped}, {"failed", st.Failed}} {
			fmt.Fprintf(&b, "aksml_replica_model_data_records_total{outcome=%q} %d\n", kv.k, kv.v)
		}
	}
	if s.tel != nil {
		st := s.tel.stats()
		b.WriteString("# HELP aksml_replica_telemetry_records_total Request telemetry records (requests and printed lines) by outcome: recorded were made, sent reached the sink, dropped found the buffer full, failed were refused by the sink.\n")
		b.WriteString("# TYPE aksml_replica_telemetry_records_total counter\n")
		for _, kv := range []struct {
			k string
			v int64
		}{{"recorded", st.Recorded}, {"sent", st.Sent}, {"dropped", st.Dropped}, {"failed", st.Failed}} {
			fmt.Fprintf(&b, "aksml_replica_telemetry_records_total{outcome=%q} %d\n", kv.k, kv.v)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// metricsAllowed reports whether r may read /metrics: a caller on a
// loopback address, or one presenting Config.MetricsKey as a Bearer
// credential. As the router's /metrics, and for the same reason: what a
// replica counts is not the callers' business.
func (s *Server) metricsAllowed(r *http.Request) bool {
	if key := s.cfg.MetricsKey; key != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(tok), []byte(key)) == 1 {
			return true
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) serveMetrics(w http.ResponseWriter) {
	var b bytes.Buffer
	_ = s.WriteMetrics(&b)
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; version=0.0.4; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(b.Len())}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// ParseMetrics reads the counters of a replica's /metrics text (as
// WriteMetrics writes it) back into Stats; other lines are skipped. A
// backend that reaches a replica only over HTTP reads its counts this way.
func ParseMetrics(text []byte) (Stats, error) {
	var st Stats
	for n, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, "{outcome=\"")
		if !ok {
			continue
		}
		outcome, val, ok := strings.Cut(rest, "\"}")
		if !ok {
			return st, fmt.Errorf("metrics line %d: %q has no closing \"}", n+1, line)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return st, fmt.Errorf("metrics line %d: value %q: %w", n+1, strings.TrimSpace(val), err)
		}
		var p *int64
		switch name {
		case "aksml_replica_model_data_records_total":
			p = map[string]*int64{"collected": &st.DataCollection.Collected, "written": &st.DataCollection.Written,
				"dropped": &st.DataCollection.Dropped, "failed": &st.DataCollection.Failed}[outcome]
		case "aksml_replica_telemetry_records_total":
			p = map[string]*int64{"recorded": &st.Telemetry.Recorded, "sent": &st.Telemetry.Sent,
				"dropped": &st.Telemetry.Dropped, "failed": &st.Telemetry.Failed}[outcome]
		}
		if p != nil {
			*p = v
		}
	}
	return st, nil
}
