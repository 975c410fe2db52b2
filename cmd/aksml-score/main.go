// Command aksml-score is the aksml replica server for Python entry scripts:
// a faster stand-in for azmlinfsrv (azureml-inference-server-http) that runs
// the same score.py unchanged. It is static (build with CGO_ENABLED=0) so it
// can be copied into any image that has a Python interpreter.
//
//	aksml-score --entry_script score.py --model_dir ./azureml-models/m/1 --port 5001 --worker_count 2
//
// See package scoring (Run) for every flag. With AML_APP_INSIGHTS_ENABLED=true
// (enable_app_insights), request telemetry goes to OpenTelemetry over
// OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (package otlpsink), and
// as JSON lines below AKSML_TELEMETRY_DIR when that is set.
package main

import (
	"context"

	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/scoring/otlpsink"
)

func main() {
	scoring.MainWith(nil, scoring.Options{TelemetrySink: otlpSink})
}

// otlpSink is the OTLP sink of OTEL_EXPORTER_OTLP_ENDPOINT, if set.
func otlpSink(ctx context.Context, getenv func(string) string, service string) (scoring.TelemetrySink, func(context.Context) error, error) {
	s, err := otlpsink.FromEnv(ctx, getenv, service)
	if err != nil || s == nil {
		return nil, nil, err
	}
	return s, s.Shutdown, nil
}
