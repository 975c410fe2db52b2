package notebook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/frontend"
)

func TestEffectiveSplit(t *testing.T) {
	rec := endpoint.Record{Versions: []endpoint.VersionRecord{
		{Config: endpoint.VersionConfig{VersionName: "blue", IsDefault: true, TrafficPercentile: 10}},
		{Config: endpoint.VersionConfig{VersionName: "green", TrafficPercentile: 50}},
	}}
	got := EffectiveSplit(rec)
	if got["blue"] != 50 || got["green"] != 50 {
		t.Errorf("EffectiveSplit = %v, want blue 50 (10 + the unclaimed 40), green 50", got)
	}
}

func TestRunLoadCountsVersionsAndLatencies(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k1" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		v := "blue"
		if n.Add(1)%4 == 0 {
			v = "green"
		}
		w.Header().Set(frontend.HeaderServedBy, v)
		_, _ = w.Write([]byte(`[1]`))
	}))
	defer srv.Close()
	r := RunLoad(context.Background(), srv.URL, `{"data": [[1]]}`, &LoadOptions{Requests: 40, Concurrency: 3, Key: "k1"})
	if r.Requests != 40 || r.OK != 40 || len(r.Latencies) != 40 {
		t.Fatalf("result = %+v", r)
	}
	if r.ByVersion["blue"] != 30 || r.ByVersion["green"] != 10 {
		t.Errorf("by version = %v, want blue 30 green 10", r.ByVersion)
	}
	h := r.LatencyHistogram()
	if !strings.HasPrefix(h.SVG, "<svg") || strings.Count(h.SVG, "<rect") != histogramBuckets {
		t.Errorf("histogram SVG has %d bars", strings.Count(h.SVG, "<rect"))
	}
	v := r.VersionCounts()
	if !strings.Contains(v.SVG, "30 (75 %)") || !strings.Contains(v.Text, "green=10") {
		t.Errorf("version counts = %q / %q", v.Text, v.SVG)
	}
	d := r.Data()
	if !strings.Contains(d.HTML, "<svg") || !strings.Contains(d.Text, "40 requests, 40 OK") {
		t.Errorf("Data = %+v", d)
	}

	bad := RunLoad(context.Background(), srv.URL, `{}`, &LoadOptions{Requests: 5, Concurrency: 2})
	if bad.OK != 0 || bad.Status[http.StatusUnauthorized] != 5 || len(bad.Errors) != 5 {
		t.Errorf("without the key: %+v", bad)
	}
}

func TestRunLoadStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := RunLoad(ctx, srv.URL, "{}", &LoadOptions{Requests: 1000})
	if r.OK != 0 || r.Requests > 4 {
		t.Errorf("a cancelled run sent %d requests (%d OK)", r.Requests, r.OK)
	}
}

func TestTablesEscapeAndShow(t *testing.T) {
	d := Logs([]string{"<script>x</script>", "line 2"})
	if strings.Contains(d.HTML, "<script>") || !strings.Contains(d.HTML, "&lt;script&gt;") {
		t.Errorf("logs HTML not escaped: %s", d.HTML)
	}
	var got []Data
	restore := SetPublisher(func(d Data) { got = append(got, d) })
	Show(HTML("<b>x</b>"), "plain", nil)
	restore()
	if len(got) != 3 || got[0].HTML != "<b>x</b>" || got[1].Text != "plain" || got[2].Text != "<nil>" {
		t.Errorf("published %+v", got)
	}
	m := got[0].MIMEBundle()
	if m[MIMEHTML] != "<b>x</b>" || m[MIMEText] != "<b>x</b>" {
		t.Errorf("bundle = %v", m)
	}
}
