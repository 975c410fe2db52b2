// Package otlpsink sends a replica's request telemetry (scoring.Telemetry,
// v1's enable_app_insights) as OpenTelemetry over OTLP/HTTP, the open
// protocol Azure Monitor (Application Insights), Jaeger, Grafana and most
// collectors ingest: a scored request becomes a server span, each line
// score.py printed while serving it a log record in the span's trace.
//
// It is a package of its own so that programs that do not send OTLP (the
// simulator, aml, the scoring package itself) do not link the OpenTelemetry
// SDK: only cmd/aksml-score, the replica binary, and users who opt in import
// it.
//
//	sink, err := otlpsink.New(ctx, otlpsink.Options{Endpoint: "http://collector:4318", ServiceName: "diabetes"})
//	if err != nil { ... }
//	defer sink.Shutdown(context.Background())
//	srv, err := scoring.NewServer(scoring.Config{..., Telemetry: &scoring.Telemetry{Sink: sink}})
//
// # Mapping
//
// A request record is a span named "POST /score" (its method and path) of
// kind server, from the request's arrival to the end of its response, with
// the attributes http.request.method, url.path, http.response.status_code,
// aksml.request_id (x-ms-request-id), aksml.client_request_id (the
// caller's id), aksml.service, aksml.version and aksml.replica; a status of
// 500 or more sets the span's status to Error. Its trace id is the request
// id's 16 bytes when it is a UUID (the router's ids are), so a trace is found
// by the id a caller sees in x-ms-request-id; other ids are hashed (SHA-256).
// When the caller sent a valid W3C traceparent header, the span is in the
// caller's trace instead, as a child of the caller's span (the record's
// TraceID and ParentSpanID), so it joins the caller's distributed trace.
// A print record is a log record in that trace and span, with the line as
// its body, severity INFO (stdout) or WARN (stderr), and the attributes
// log.iostream, aksml.request_id and aksml.client_request_id.
//
// The resource carries service.name (Options.ServiceName) and the
// attributes of OTEL_RESOURCE_ATTRIBUTES.
//
// # Errors and retries
//
// Export sends one OTLP request for the spans and one for the logs of a
// batch and returns when both are answered. The exporters retry transient
// failures for up to Options.Timeout; an error makes the replica count the
// batch as failed. The replica calls Export off the request path, so a slow
// collector costs records (counted as dropped), never request latency.
package otlpsink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/aksml/aksml/scoring"
)

// Options configure a Sink.
type Options struct {
	// Endpoint is the OTLP/HTTP base URL (http://host:4318); the paths
	// /v1/traces and /v1/logs are added. Empty means the SDK's environment
	// variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
	// OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, ...), else
	// https://localhost:4318.
	Endpoint string
	// Headers are sent with every request (an ingestion key).
	Headers map[string]string
	// ServiceName is the resource's service.name. Empty means "aksml-score".
	ServiceName string
	// Timeout bounds one export, retries included. Zero means 10 seconds.
	Timeout time.Duration
}

// Sink is a scoring.TelemetrySink sending OTLP/HTTP. It is safe for
// concurrent use; exports are sent one at a time.
type Sink struct {
	mu     sync.Mutex
	spans  sdktrace.SpanExporter
	logs   sdklog.Exporter
	tp     *sdktrace.TracerProvider
	lp     *sdklog.LoggerProvider
	tracer trace.Tracer
	logger otellog.Logger
	ids    *idGen
	// Filled by the providers' processors during one Export (under mu).
	endedSpans []sdktrace.ReadOnlySpan
	emitted    []sdklog.Record
	closed     bool
}

var _ scoring.TelemetrySink = (*Sink)(nil)

// New returns a Sink for opts. It does not connect: the first Export does.
func New(ctx context.Context, opts Options) (*Sink, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.ServiceName == "" {
		opts.ServiceName = "aksml-score"
	}
	topts := []otlptracehttp.Option{otlptracehttp.WithTimeout(opts.Timeout)}
	lopts := []otlploghttp.Option{otlploghttp.WithTimeout(opts.Timeout)}
	if opts.Endpoint != "" {
		base := strings.TrimRight(opts.Endpoint, "/")
		topts = append(topts, otlptracehttp.WithEndpointURL(base+"/v1/traces"))
		lopts = append(lopts, otlploghttp.WithEndpointURL(base+"/v1/logs"))
	}
	if len(opts.Headers) > 0 {
		topts = append(topts, otlptracehttp.WithHeaders(opts.Headers))
		lopts = append(lopts, otlploghttp.WithHeaders(opts.Headers))
	}
	spans, err := otlptracehttp.New(ctx, topts...)
	if err != nil {
		return nil, fmt.Errorf("otlpsink: trace exporter: %w", err)
	}
	logs, err := otlploghttp.New(ctx, lopts...)
	if err != nil {
		_ = spans.Shutdown(ctx)
		return nil, fmt.Errorf("otlpsink: log exporter: %w", err)
	}
	res, err := resource.Merge(resource.Empty(), resource.NewSchemaless(attribute.String("service.name", opts.ServiceName)))
	if err != nil {
		return nil, err
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	s := &Sink{spans: spans, logs: logs, ids: &idGen{}}
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithIDGenerator(s.ids), sdktrace.WithSpanProcessor(spanCollector{s}))
	s.lp = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(logCollector{s}))
	s.tracer = s.tp.Tracer("github.com/aksml/aksml/scoring")
	s.logger = s.lp.Logger("github.com/aksml/aksml/scoring")
	return s, nil
}

// Export implements scoring.TelemetrySink.
func (s *Sink) Export(ctx context.Context, records []scoring.TelemetryRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("otlpsink: the sink is shut down")
	}
	s.endedSpans, s.emitted = s.endedSpans[:0], s.emitted[:0]
	for i := range records {
		r := &records[i]
		tid, sid := IDs(r.RequestID)
		parent := context.Background()
		if t, p, ok := traceOf(r); ok {
			// The caller's trace (its traceparent): the span is a child
			// of the caller's span.
			tid = t
			parent = trace.ContextWithRemoteSpanContext(parent, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: t, SpanID: p, TraceFlags: trace.FlagsSampled, Remote: true}))
		}
		switch r.Kind {
		case scoring.TelemetryRequest:
			s.ids.next = ids{tid, sid}
			_, span := s.tracer.Start(parent, r.Method+" "+r.Path,
				trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(r.Time),
				trace.WithAttributes(
					attribute.String("http.request.method", r.Method),
					attribute.String("url.path", r.Path),
					attribute.Int("http.response.status_code", r.Status),
				),
				trace.WithAttributes(recordAttrs(r)...))
			if r.Status >= 500 || r.Status == 0 {
				span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", r.Status))
			}
			span.End(trace.WithTimestamp(r.Time.Add(r.Duration)))
		case scoring.TelemetryPrint:
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
			var rec otellog.Record
			rec.SetTimestamp(r.Time)
			rec.SetObservedTimestamp(r.Time)
			rec.SetBody(attribute.StringValue(r.Message))
			if r.Stream == "stderr" {
				rec.SetSeverity(otellog.SeverityWarn)
				rec.SetSeverityText("WARN")
			} else {
				rec.SetSeverity(otellog.SeverityInfo)
				rec.SetSeverityText("INFO")
			}
			rec.AddAttributes(attribute.String("log.iostream", r.Stream))
			rec.AddAttributes(recordAttrs(r)...)
			s.logger.Emit(trace.ContextWithSpanContext(context.Background(), sc), rec)
		}
	}
	var errs []error
	if len(s.endedSpans) > 0 {
		if err := s.spans.ExportSpans(ctx, s.endedSpans); err != nil {
			errs = append(errs, fmt.Errorf("otlpsink: traces: %w", err))
		}
	}
	if len(s.emitted) > 0 {
		if err := s.logs.Export(ctx, s.emitted); err != nil {
			errs = append(errs, fmt.Errorf("otlpsink: logs: %w", err))
		}
	}
	clear(s.endedSpans)
	clear(s.emitted)
	return errors.Join(errs...)
}

// Shutdown stops the exporters; Export fails afterwards.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.tp.Shutdown(ctx), s.lp.Shutdown(ctx), s.spans.Shutdown(ctx), s.logs.Shutdown(ctx))
}

// IDs returns the trace and span ids of a request id: a UUID's 16 bytes as
// the trace id (else the first 16 bytes of its SHA-256), and 8 bytes of the
// SHA-256 of the id as the span id.
func IDs(requestID string) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	sum := sha256.Sum256([]byte(requestID))
	if h := strings.ReplaceAll(requestID, "-", ""); len(h) == 32 && len(requestID) == 36 {
		if _, err := hex.Decode(tid[:], []byte(h)); err != nil {
			copy(tid[:], sum[:16])
		}
	} else {
		copy(tid[:], sum[:16])
	}
	var sid trace.SpanID
	copy(sid[:], sum[16:24])
	if !tid.IsValid() { // all zero: never valid in OTLP
		tid[15] = 1
	}
	if !sid.IsValid() {
		sid[7] = 1
	}
	return tid, sid
}

// traceOf returns the trace and parent span ids a record carries (from
// the caller's traceparent), when both are there and valid.
func traceOf(r *scoring.TelemetryRecord) (trace.TraceID, trace.SpanID, bool) {
	if r.TraceID == "" || r.ParentSpanID == "" {
		return trace.TraceID{}, trace.SpanID{}, false
	}
	t, err1 := trace.TraceIDFromHex(r.TraceID)
	p, err2 := trace.SpanIDFromHex(r.ParentSpanID)
	return t, p, err1 == nil && err2 == nil
}

type ids struct {
	t trace.TraceID
	s trace.SpanID
}

// idGen hands the tracer the ids of the span being made (Export sets next
// under the sink's lock).
type idGen struct{ next ids }

func (g *idGen) NewIDs(context.Context) (trace.TraceID, trace.SpanID)  { return g.next.t, g.next.s }
func (g *idGen) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return g.next.s }

// spanCollector keeps the spans ended during an Export.
type spanCollector struct{ s *Sink }

func (spanCollector) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c spanCollector) OnEnd(sp sdktrace.ReadOnlySpan)                { c.s.endedSpans = append(c.s.endedSpans, sp) }
func (spanCollector) Shutdown(context.Context) error                  { return nil }
func (spanCollector) ForceFlush(context.Context) error                { return nil }

// logCollector keeps the log records emitted during an Export.
type logCollector struct{ s *Sink }

func (logCollector) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c logCollector) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.s.emitted = append(c.s.emitted, r.Clone())
	return nil
}
func (logCollector) Shutdown(context.Context) error   { return nil }
func (logCollector) ForceFlush(context.Context) error { return nil }

// FromEnv returns the sink aksml-score uses: one sending to
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with
// service.name serviceName, or nil when neither variable is set.
func FromEnv(ctx context.Context, getenv func(string) string, serviceName string) (*Sink, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	return New(ctx, Options{ServiceName: serviceName})
}

// recordAttrs are the attributes every span and log record carries: the
// request's ids and where it was served.
func recordAttrs(r *scoring.TelemetryRecord) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("aksml.request_id", r.RequestID),
		attribute.String("aksml.client_request_id", r.ClientRequestID),
		attribute.String("aksml.service", r.Service),
		attribute.String("aksml.version", r.Version),
		attribute.String("aksml.replica", r.Replica),
	}
}
