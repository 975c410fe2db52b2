// Package scoring is the replica server of aksml: the part of a deployment
// that answers scoring requests, as azureml-inference-server-http (gunicorn +
// Flask) does in an Azure ML container, but without HTTP inside Python.
//
// A replica hosts either a Go-native model (a Handler, or a RawHTTPHandler
// that sets its own status and headers) or a Python entry script (score.py
// with init() and run(raw_data)), unchanged from Azure ML:
//
//	srv, err := scoring.NewServer(scoring.Config{
//		EntryScript: "score.py",
//		SourceDir:   "/app/src",
//		ModelDir:    "/app/azureml-models/diabetes/1",
//		Workers:     2,
//	})
//	if err != nil { ... }
//	srv.Start(ctx)            // init runs in the background
//	srv.Wait(ctx)             // nil once ready; the init error otherwise
//	scoring.Serve(ctx, ln, srv)
//	srv.Close()               // kills and waits for every worker
//
// # Routes
//
// GET / answers 200 "Healthy" once init has finished (503 before), POST /score
// runs the model, GET /swagger.json returns the OpenAPI document (from the
// inference_schema decorators or SchemaProvider, a generic one otherwise, or
// a swagger.json file in the source directory). Other methods get 405, bodies
// above Config.MaxBodyBytes (100 MB by default) get 413.
//
// # Python workers
//
// Config.Workers persistent interpreter processes each import the script
// and call init() once. A request goes to an idle worker over a pair of
// pipes with length-prefixed frames (no process per request, no HTTP server
// in Python); the host code runs from memory, embedded in this package.
// run(raw_data) gets the body as a str; its return value is JSON-encoded as
// Azure ML does (a str becomes a JSON string; numpy and pandas values are
// converted rather than rejected); an AMLResponse whose body is a generator
// is streamed chunk by chunk. The worker environment holds
// AZUREML_MODEL_DIR, AZUREML_ENTRY_SCRIPT (absolute), AZUREML_SOURCE_DIRECTORY,
// AML_APP_ROOT and Config.Env; the working directory is the app root, which
// holds the source directory under its own name as /var/azureml-app does in
// an Azure ML container (see Config.AppRoot).
//
// Failures map as in Azure ML: an exception in run gives 500 with the
// generic JSON message and the traceback in the log; an exception in init makes the worker
// exit non-zero and the replica never becomes ready (Err carries the
// traceback tail); a worker that dies is restarted and the request it held
// fails at once with 502; a run longer than Config.ScoringTimeout kills and
// replaces its worker and the request gets 504.
//
// When the real packages are not importable, the workers provide small
// compatibility modules so common scripts run unchanged:
// azureml.core.model.Model.get_model_path (resolving in the AZUREML_MODEL_DIR
// layout, then ./NAME), azureml.contrib.services.aml_request (AMLRequest,
// rawhttp) and aml_response (AMLResponse), their
// azureml_inference_server_http.api twins, and inference_schema (input_schema,
// output_schema, NumpyParameterType, PandasParameterType,
// StandardPythonParameterType) converting input as the real decorators do.
//
// # Logs
//
// Logs(tail, initOnly) returns the workers' stdout and stderr and the
// server's events, or only what was logged until init finished; this backs
// a service's get_logs(num_lines, init).
//
// # Data collection and telemetry
//
// Config.DataCollection turns on azureml.monitoring.ModelDataCollector
// (collect_model_data) and Config.Telemetry request telemetry
// (enable_app_insights): a record per /score request (time, duration,
// status, service, version, replica, the request's x-ms-request-id and the
// caller's x-ms-client-request-id or x-request-id) and one per line a Python
// run() prints while serving it. Both leave the request path at once: the
// worker writes to a pipe the server drains into a bounded buffer, one
// goroutine hands batches to the ModelDataStore or TelemetrySink, and a full
// buffer drops (and counts) records instead of slowing a request.
// JSONLinesSink writes telemetry to a file; package otlpsink sends it as
// OpenTelemetry traces and logs over OTLP/HTTP. A collector's correlation id
// is the request's id unless score.py passes its own. Stats, WriteMetrics
// and GET /metrics (loopback callers, or Config.MetricsKey) give the counts.
//
// # Programs
//
// cmd/aksml-score is Main(nil) and takes azmlinfsrv's command line,
// environment and config file (see Run and docs/inference-server.md) plus
// aksml's own flags such as --address (127.0.0.1 by default); a Go model
// binary is func main() { scoring.Main(mymodel.New) }.
package scoring
