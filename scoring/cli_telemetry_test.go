package scoring

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// aksml-score with AML_APP_INSIGHTS_ENABLED=true writes its telemetry to
// AKSML_TELEMETRY_DIR and to the sink of Options.TelemetrySink, and serves
// its counters on /metrics to a loopback caller.
func TestCLITelemetry(t *testing.T) {
	dir := t.TempDir()
	mem := &memorySink{}
	closed := make(chan struct{})
	opts := Options{TelemetrySink: func(ctx context.Context, getenv func(string) string, service string) (TelemetrySink, func(context.Context) error, error) {
		if service != "svc" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "http://collector" {
			t.Errorf("sink opener got service %q, endpoint %q", service, getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		}
		return mem, func(context.Context) error { close(closed); return nil }, nil
	}}
	env := map[string]string{"AML_APP_INSIGHTS_ENABLED": "true", "AKSML_TELEMETRY_DIR": dir, "AKSML_REPLICA_NAME": "svc-abc",
		"AKSML_VERSION_NAME": "blue", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector"}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--port", "0", "--service_name", "svc"}, mapEnv(env), echoHandler, opts, io.Discard, pw)
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	re := regexp.MustCompile(`listening on http://(\S+)`)
	for addr == "" && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	post := func() int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/score", strings.NewReader("hi"))
		req.Header.Set("x-ms-client-request-id", "caller-9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(30 * time.Second); post() != 200; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the replica never answered 200")
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "aksml_replica_telemetry_records_total") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-closed
	recs, err := ReadServiceTelemetry(dir, "svc")
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.ClientRequestID != "caller-9" || last.Replica != "svc-abc" || last.Version != "blue" || last.Service != "svc" || last.Status != 200 {
		t.Fatalf("last record %+v", last)
	}
	if got := mem.records(); len(got) != len(recs) {
		t.Fatalf("%d records in the file, %d in the other sink", len(recs), len(got))
	}
}
