package scoring

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aksml/aksml/errcode"
)

// ShutdownGrace is how long Serve lets requests in flight finish after its
// context ends.
const ShutdownGrace = 10 * time.Second

// Serve answers HTTP on ln with h (usually a *Server) until ctx ends, then
// shuts down gracefully (waiting up to ShutdownGrace for requests in flight)
// and returns nil. It returns an Unavailable error if the listener fails.
// Serve does not close h: the caller closes its Server.
//
// A *Server is served by a lean HTTP/1.1 engine that takes the common
// request (GET or POST of /score or /, with a body of known length up to
// 1 MiB) without net/http's per-request machinery and hands every other
// connection to net/http; both give the same answers. aksml-score turns the
// engine off with the environment variable AKSML_SCORE_HTTP=net/http.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	return serve(ctx, ln, h, true)
}

// serve is Serve, with the lean engine for a *Server when lean is true.
func serve(ctx context.Context, ln net.Listener, h http.Handler, lean bool) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          nil,
	}
	if s, ok := h.(*Server); ok && lean {
		var after func()
		if s.dc != nil || s.tel != nil {
			after = s.helpCapture
		}
		return serveLean(ctx, wrapListener(ln), h, s.leanEligible, hs, after)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(wrapListener(ln)) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return errcode.Wrap(errcode.Unavailable, fmt.Errorf("serve on %s: %w", ln.Addr(), err))
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
		<-errc
		return nil
	}
}

// Main runs a replica server as a program and exits: it parses the
// azmlinfsrv-style flags of os.Args (see Run), serves until SIGINT or
// SIGTERM, and exits 0, or 1 after printing the error (2 for bad flags). With
// a non-nil h the program serves that Go model, so a Go-native model binary
// is one line:
//
//	func main() { scoring.Main(mymodel.New) }
//
// cmd/aksml-score is Main(nil): it hosts a Python entry script.
//
// When it hosts Python and the GOMAXPROCS environment variable is not set,
// Main gives the Go runtime half of the available CPUs (at least one): the
// Go side only moves bytes, the cores are better left to the Python workers,
// and idle Go threads spinning for work cost them CPU (on 2 CPUs this raised
// the sklearn benchmark's throughput by about a third).
//
// With model data collection or request telemetry on, a replica hosting
// Python starts this program again (os.Executable, the same arguments, and
// EnvCaptureWriterProcess=1 in its environment) as its capture writer
// process, which formats and writes the records at the kernel's idle
// priority; Main run that way is that process. AKSML_CAPTURE_WRITER=
// in-process keeps the work in the server.
func Main(h NewHandler) { MainWith(h, Options{}) }

// Options extend Main and Run for a program that links more than this
// package.
type Options struct {
	// TelemetrySink, when set, opens a sink for request telemetry
	// (AML_APP_INSIGHTS_ENABLED=true) from the environment (getenv), for a
	// service named service: it returns a nil sink, and no error, when the
	// environment names none. close runs after the replica has closed.
	// cmd/aksml-score passes otlpsink's, so OTEL_EXPORTER_OTLP_ENDPOINT
	// sends OTLP.
	TelemetrySink func(ctx context.Context, getenv func(string) string, service string) (sink TelemetrySink, close func(context.Context) error, err error)

	// captureProcess lets a replica hosting Python hand its records to a
	// capture writer process (see capturewriter.go), this program started
	// again: MainWith sets it, as the program then runs the process too.
	captureProcess bool
}

// MainWith is Main with Options.
func MainWith(h NewHandler, opts Options) {
	if isCaptureWriterProcess(os.Getenv) {
		if err := runCaptureWriter(os.Args[1:], os.Getenv, opts, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "aksml-score:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	opts.captureProcess = true
	if h == nil && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(pythonHostProcs(runtime.GOMAXPROCS(0)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, h, opts, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errcode.InvalidArgument):
		fmt.Fprintln(os.Stderr, "aksml-score:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "aksml-score:", err)
		os.Exit(1)
	}
}

// pythonHostProcs is the GOMAXPROCS of a server hosting Python workers on
// procs CPUs.
func pythonHostProcs(procs int) int { return max(1, procs/2) }

// envFlag collects repeated --env KEY=VALUE flags.
type envFlag map[string]string

func (e envFlag) String() string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + e[k]
	}
	return strings.Join(parts, ",")
}

func (e envFlag) Set(v string) error {
	k, val, err := parseEnvAssignment(v)
	if err != nil {
		return err
	}
	e[k] = val
	return nil
}

// parseEnvAssignment splits KEY=VALUE.
func parseEnvAssignment(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || strings.ContainsAny(k, "\x00 \t\n") || strings.ContainsRune(v, 0) {
		return "", "", errcode.Errorf(errcode.InvalidArgument, "env %q is not KEY=VALUE", s)
	}
	return k, v, nil
}

// DefaultCLIScoringTimeout is aksml-score's scoring timeout when neither
// --scoring_timeout_ms, SCORING_TIMEOUT_MS nor a config file sets one: an
// hour, azmlinfsrv's default (the deploy config's 60 s is passed as a flag).
const DefaultCLIScoringTimeout = time.Hour

// DefaultHealthPort is the health port with SEPERATE_HEALTH_ENDPOINT=true.
const DefaultHealthPort = 5000

// Run is Main without the process exit and signal handling: it parses args,
// starts the replica, listens on --address:--port, prints
// "listening on http://ADDR" to stderr, and serves until ctx ends or init
// fails (then it returns the init error, as a container would exit).
//
// Flags (azmlinfsrv's, then aksml's own):
//
//	--entry_script PATH          score.py to host (default $AZUREML_ENTRY_SCRIPT, else main.py in the app root)
//	--model_dir DIR              AZUREML_MODEL_DIR (default $AZUREML_MODEL_DIR); need not exist
//	--port N                     port (default 5001; 0 picks a free one)
//	--health_port N              health port with SEPERATE_HEALTH_ENDPOINT=true (default 5000)
//	--worker_count N             Python workers (default $WORKER_COUNT, else 1)
//	--access_control_allow_origins LIST  CORS origins, comma-separated (default $AML_CORS_ORIGINS)
//	--config_file PATH           azmlinfsrv JSON config file (default $AZUREML_CONFIG_FILE, else config.json in the app root)
//	--appinsights_instrumentation_key KEY  accepted and ignored (telemetry goes to aksml's sinks, below)
//	--rest                       accepted and ignored
//	--source_dir DIR             source directory (default $AZUREML_SOURCE_DIRECTORY, relative to the app root)
//	--address IP                 address to listen on (default 127.0.0.1)
//	--interpreter PATH           Python interpreter (default $AKSML_PYTHON, else python3)
//	--scoring_timeout_ms N       run() time limit (default $SCORING_TIMEOUT_MS, else 3600000)
//	--max_request_body_bytes N   body limit (default 104857600)
//	--service_name NAME          title of /swagger.json (default $SERVICE_NAME, else "ML service")
//	--env KEY=VALUE              extra worker environment variable (repeatable)
//	--max_batch_size N           request batching: up to N requests per run_batch call (default 0, off)
//	--max_batch_delay_ms N       how long a batch that is not full waits for more (default 0)
//
// The app root is $AML_APP_ROOT, else the working directory. Also read from
// the environment: SERVICE_VERSION, SERVICE_PATH_PREFIX,
// SEPERATE_HEALTH_ENDPOINT (sic), SERVER_VERSION_LOG_RESPONSE_ENABLED,
// AML_MODEL_DC_STORAGE_ENABLED with AKSML_MODEL_DATA_DIR (data
// collection), AML_APP_INSIGHTS_ENABLED with AKSML_TELEMETRY_DIR (request
// telemetry as JSON lines in DIR/telemetry/SERVICE/REPLICA.jsonl, see
// TelemetryFile), AKSML_VERSION_NAME and AKSML_REPLICA_NAME (the version
// and replica telemetry names; the host name by default) and
// AKSML_METRICS_KEY (Config.MetricsKey).
// docs/inference-server.md has the whole table.
func Run(ctx context.Context, args []string, h NewHandler, stdout, stderr io.Writer) error {
	return run(ctx, args, os.Getenv, h, Options{}, stdout, stderr)
}

// RunWith is Run with Options.
func RunWith(ctx context.Context, args []string, h NewHandler, opts Options, stdout, stderr io.Writer) error {
	return run(ctx, args, os.Getenv, h, opts, stdout, stderr)
}

// cliSettings is what the command line, the environment and a config file
// decide, before it becomes a Config.
type cliSettings struct {
	cfg        Config
	addr       string
	port       int
	healthPort int // with separateHealth; 0 picks a free port
	// separateHealth serves a second port too (SEPERATE_HEALTH_ENDPOINT).
	separateHealth bool
	// telemetry is AML_APP_INSIGHTS_ENABLED=true; telemetryDir is
	// AKSML_TELEMETRY_DIR.
	telemetry    bool
	telemetryDir string
}

func run(ctx context.Context, args []string, getenv func(string) string, h NewHandler, opts Options, stdout, stderr io.Writer) error {
	st, err := parseCLI(args, getenv, h, stderr)
	if err != nil {
		return err
	}
	st.cfg.LogOutput = stdout
	st.cfg.Logger = slog.New(slog.DiscardHandler)
	closeSinks, err := attachTelemetrySinks(ctx, st, getenv, opts, stderr, stderr)
	if err != nil {
		return err
	}
	defer closeSinks()
	if opts.captureProcess && h == nil && (st.cfg.DataCollection != nil || st.cfg.Telemetry != nil) {
		st.cfg.capture = captureProcessOf(args, getenv)
	}
	srv, err := NewServer(st.cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort(st.addr, strconv.Itoa(st.port)))
	if err != nil {
		return errcode.Wrap(errcode.Unavailable, err)
	}
	var hln net.Listener
	if st.separateHealth {
		hln, err = net.Listen("tcp", net.JoinHostPort(st.addr, strconv.Itoa(st.healthPort)))
		if err != nil {
			ln.Close()
			return errcode.Wrap(errcode.Unavailable, fmt.Errorf("health port: %w", err))
		}
		fmt.Fprintf(stderr, "aksml-score: health on http://%s\n", hln.Addr())
	}
	fmt.Fprintf(stderr, "aksml-score: listening on http://%s\n", ln.Addr())
	if err := srv.Start(ctx); err != nil {
		ln.Close()
		if hln != nil {
			hln.Close()
		}
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-srv.InitDone()
		if srv.Err() != nil {
			cancel()
		}
	}()
	lean := getenv("AKSML_SCORE_HTTP") != "net/http"
	herr := make(chan error, 1)
	if hln != nil {
		go func() { herr <- serve(sctx, hln, srv, lean) }()
	} else {
		herr <- nil
	}
	err = serve(sctx, ln, srv, lean)
	cancel()
	if e := <-herr; err == nil {
		err = e
	}
	if err != nil {
		return err
	}
	<-srv.InitDone()
	if err := srv.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// parseCLI turns the command line, the environment (getenv) and a config
// file into settings: flags win over the environment, which wins over the
// config file, as in azmlinfsrv.
func parseCLI(args []string, getenv func(string) string, h NewHandler, stderr io.Writer) (*cliSettings, error) {
	fs := flag.NewFlagSet("aksml-score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envFlag{}
	entry := fs.String("entry_script", "", "entry script (score.py) to host (default $AZUREML_ENTRY_SCRIPT, else main.py in the app root)")
	modelDir := fs.String("model_dir", "", "model directory, AZUREML_MODEL_DIR (default $AZUREML_MODEL_DIR)")
	port := fs.Int("port", 5001, "port to listen on (0 picks a free port)")
	healthPort := fs.Int("health_port", DefaultHealthPort, "health port when SEPERATE_HEALTH_ENDPOINT=true")
	workers := fs.Int("worker_count", 0, "number of Python worker processes (default $WORKER_COUNT, else 1)")
	origins := fs.String("access_control_allow_origins", "", "CORS origins, comma-separated (default $AML_CORS_ORIGINS)")
	configFile := fs.String("config_file", "", "azmlinfsrv JSON configuration file (default $AZUREML_CONFIG_FILE, else config.json in the app root)")
	appInsights := fs.String("appinsights_instrumentation_key", "", "accepted for azmlinfsrv compatibility; Application Insights is not supported")
	fs.Bool("rest", false, "accepted for azmlinfsrv compatibility; ignored")
	source := fs.String("source_dir", "", "source directory (default $AZUREML_SOURCE_DIRECTORY, relative to the app root)")
	addr := fs.String("address", "127.0.0.1", "address to listen on")
	interp := fs.String("interpreter", "", "Python interpreter (default $AKSML_PYTHON, else python3 on PATH)")
	timeoutMS := fs.Int("scoring_timeout_ms", 0, "time limit of one run() in milliseconds (default $SCORING_TIMEOUT_MS, else 3600000)")
	maxBody := fs.Int64("max_request_body_bytes", DefaultMaxBodyBytes, "request body limit in bytes")
	name := fs.String("service_name", "", "service name shown in /swagger.json (default $SERVICE_NAME, else \"ML service\")")
	fs.Var(env, "env", "extra environment variable KEY=VALUE for the workers (repeatable)")
	batchSize := fs.Int("max_batch_size", 0, "request batching: give up to N concurrent requests together to run_batch (0: off)")
	batchDelay := fs.Int("max_batch_delay_ms", 0, "with batching, how long the oldest request of a batch that is not full waits for more, in milliseconds")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errcode.Wrap(errcode.InvalidArgument, err)
	}
	if fs.NArg() > 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, format, a...))
	}
	if *port < 0 || *port > 65535 {
		bad("port %d is outside 0..65535", *port)
	}
	if *healthPort < 0 || *healthPort > 65535 {
		bad("health_port %d is outside 0..65535", *healthPort)
	}
	if set["worker_count"] && *workers <= 0 {
		bad("worker_count %d is not positive", *workers)
	}
	if set["scoring_timeout_ms"] && *timeoutMS <= 0 {
		bad("scoring_timeout_ms %d is not positive", *timeoutMS)
	}
	if *batchDelay < 0 || *batchDelay > int(MaxBatchDelayLimit/time.Millisecond) {
		bad("max_batch_delay_ms %d is outside 0..%d", *batchDelay, MaxBatchDelayLimit/time.Millisecond)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	cwd, _ := os.Getwd()
	appRoot := getenv("AML_APP_ROOT")
	if appRoot == "" {
		appRoot = cwd
	}
	underRoot := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(appRoot, p)
	}

	// The entry script as azmlinfsrv learns it before the config file.
	entryFlag := *entry
	if entryFlag != "" {
		if abs, err := filepath.Abs(entryFlag); err == nil {
			entryFlag = abs
		}
	}
	envEntry := getenv("AZUREML_ENTRY_SCRIPT")

	// The config file: named, or config.json in the app root or beside
	// the entry script. A discovered file that is not a JSON object is
	// skipped with a warning; a named one must be valid.
	fc := &fileConfig{values: map[string]string{}}
	cfPath, named := *configFile, true
	if cfPath == "" {
		cfPath = getenv("AZUREML_CONFIG_FILE")
	}
	if cfPath == "" {
		named = false
		dirs := []string{appRoot}
		if e := firstNonEmpty(entryFlag, envEntry); e != "" {
			dirs = append(dirs, filepath.Dir(underRoot(e)))
		}
		for _, d := range dirs {
			p := filepath.Join(d, "config.json")
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
				cfPath = p
				break
			}
		}
	}
	if cfPath != "" {
		b, err := os.ReadFile(cfPath)
		if err != nil {
			return nil, errcode.Errorf(errcode.InvalidArgument, "config_file %q: %v", cfPath, err)
		}
		parsed, err := parseFileConfig(cfPath, b)
		switch {
		case err == nil:
			fc = parsed
		case named:
			return nil, err
		default:
			fmt.Fprintf(stderr, "aksml-score: warning: ignoring %v\n", err)
		}
		if len(fc.unknown) > 0 {
			fmt.Fprintf(stderr, "aksml-score: warning: found extra keys in the config file that are not supported by the server: %s\n", strings.Join(fc.unknown, ", "))
		}
		if len(fc.ignored) > 0 {
			fmt.Fprintf(stderr, "aksml-score: config file keys accepted but not used by aksml-score: %s\n", strings.Join(fc.ignored, ", "))
		}
	}
	pick := func(flagVal, envName string) string {
		if flagVal != "" {
			return flagVal
		}
		if v := getenv(envName); v != "" {
			return v
		}
		return fc.values[envName]
	}

	cfg := Config{
		Handler:      h,
		Interpreter:  firstNonEmpty(*interp, getenv("AKSML_PYTHON")),
		Env:          env,
		ModelDir:     pick(*modelDir, "AZUREML_MODEL_DIR"),
		ServiceName:  pick(*name, "SERVICE_NAME"),
		AppRoot:      appRoot,
		MaxBodyBytes: *maxBody,
		// Config's rules cover the batch size and the pairing.
		MaxBatchSize:  *batchSize,
		MaxBatchDelay: time.Duration(*batchDelay) * time.Millisecond,
	}
	cfg.ServiceVersion = pick("", "SERVICE_VERSION")
	cfg.ServicePathPrefix = pick("", "SERVICE_PATH_PREFIX")
	if set["access_control_allow_origins"] {
		cfg.CORSOrigins = ParseOrigins(*origins)
	} else {
		cfg.CORSOrigins = ParseOrigins(pick("", "AML_CORS_ORIGINS"))
	}
	if v := getenv("SERVER_VERSION_LOG_RESPONSE_ENABLED"); v != "" && !strings.EqualFold(v, "true") {
		cfg.HideServerVersion = true
	}
	// Model data collection: AML_MODEL_DC_STORAGE_ENABLED=true, as v1 set
	// it in the container, with AKSML_MODEL_DATA_DIR naming the directory
	// (a workspace) the records go under.
	switch v := strings.TrimSpace(getenv("AML_MODEL_DC_STORAGE_ENABLED")); {
	case v == "" || strings.EqualFold(v, "false"):
	case strings.EqualFold(v, "true"):
		if dir := getenv("AKSML_MODEL_DATA_DIR"); dir != "" {
			cfg.DataCollection = &DataCollection{Store: &LocalModelDataStore{Root: dir}, Service: cfg.ServiceName}
		} else {
			fmt.Fprintln(stderr, "aksml-score: AML_MODEL_DC_STORAGE_ENABLED=true but AKSML_MODEL_DATA_DIR is unset: there is no store, so model data collection is off")
		}
	default:
		bad("AML_MODEL_DC_STORAGE_ENABLED %q is not true or false", v)
	}
	if *appInsights != "" || getenv("AML_APP_INSIGHTS_KEY") != "" {
		fmt.Fprintln(stderr, "aksml-score: an Application Insights instrumentation key is ignored; request telemetry (AML_APP_INSIGHTS_ENABLED=true) goes to AKSML_TELEMETRY_DIR or OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	var telemetryOn bool
	switch v := strings.TrimSpace(getenv("AML_APP_INSIGHTS_ENABLED")); {
	case v == "" || strings.EqualFold(v, "false"):
	case strings.EqualFold(v, "true"):
		telemetryOn = true
		cfg.Telemetry = &Telemetry{Service: cfg.ServiceName, Version: getenv("AKSML_VERSION_NAME"), Replica: getenv("AKSML_REPLICA_NAME")}
	default:
		bad("AML_APP_INSIGHTS_ENABLED %q is not true or false", v)
	}
	cfg.MetricsKey = getenv("AKSML_METRICS_KEY")
	switch v := getenv(EnvCaptureWriter); v {
	case "", "process", "in-process":
	default:
		bad("%s %q is not process or in-process", EnvCaptureWriter, v)
	}

	// Workers: flag, then WORKER_COUNT (a bad value is an error, as in
	// azmlinfsrv, where gunicorn refuses it).
	switch {
	case set["worker_count"]:
		cfg.Workers = *workers
	case getenv("WORKER_COUNT") != "":
		n, err := strconv.Atoi(strings.TrimSpace(getenv("WORKER_COUNT")))
		if err != nil || n <= 0 {
			bad("WORKER_COUNT %q is not a positive integer", getenv("WORKER_COUNT"))
		}
		cfg.Workers = n
	}
	// The scoring timeout, the same whichever way it is set.
	switch {
	case set["scoring_timeout_ms"]:
		cfg.ScoringTimeout = time.Duration(*timeoutMS) * time.Millisecond
	case getenv("SCORING_TIMEOUT_MS") != "":
		n, err := jsonInt(json.RawMessage(strconv.Quote(getenv("SCORING_TIMEOUT_MS"))))
		if err != nil || n <= 0 {
			bad("SCORING_TIMEOUT_MS %q is not a positive number of milliseconds", getenv("SCORING_TIMEOUT_MS"))
		}
		cfg.ScoringTimeout = time.Duration(n) * time.Millisecond
	case fc.timeout > 0:
		cfg.ScoringTimeout = time.Duration(fc.timeout) * time.Millisecond
	default:
		cfg.ScoringTimeout = DefaultCLIScoringTimeout
	}

	st := &cliSettings{addr: *addr, port: *port, telemetry: telemetryOn, telemetryDir: getenv("AKSML_TELEMETRY_DIR")}
	if getenv("SEPERATE_HEALTH_ENDPOINT") == "true" {
		st.separateHealth, st.healthPort = true, *healthPort
	}

	if h == nil {
		srcDir := *source
		if srcDir == "" {
			srcDir = underRoot(firstNonEmpty(getenv("AZUREML_SOURCE_DIRECTORY"), fc.values["AZUREML_SOURCE_DIRECTORY"]))
		} else if abs, err := filepath.Abs(srcDir); err == nil {
			srcDir = abs
		}
		cfg.SourceDir = srcDir
		// A relative entry script is looked for from the working
		// directory (a flag), the app root and the source directory.
		script, fromFlag := entryFlag, true
		if script == "" {
			script, fromFlag = firstNonEmpty(envEntry, fc.values["AZUREML_ENTRY_SCRIPT"]), false
		}
		if *entry != "" {
			script = *entry
		}
		if script != "" && !filepath.IsAbs(script) {
			var cands []string
			if fromFlag {
				cands = append(cands, filepath.Join(cwd, script))
			}
			cands = append(cands, filepath.Join(appRoot, script))
			if srcDir != "" {
				cands = append(cands, filepath.Join(srcDir, script))
			}
			chosen := cands[0]
			for _, c := range cands {
				if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
					chosen = c
					break
				}
			}
			script = chosen
		}
		cfg.EntryScript = script
	} else if set["entry_script"] {
		bad("entry_script %q cannot be used with a Go model", *entry)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	st.cfg = cfg
	return st, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// attachTelemetrySinks opens the telemetry sinks of st when telemetry is
// on (see openTelemetrySinks; its warnings go to warn) and sets them in
// st.cfg, or turns telemetry off when none is named. The function it
// returns closes them, giving them telemetryClose and reporting a failure
// to stderr.
func attachTelemetrySinks(ctx context.Context, st *cliSettings, getenv func(string) string, opts Options, warn, stderr io.Writer) (func(), error) {
	if !st.telemetry {
		return func() {}, nil
	}
	sink, closeSink, err := openTelemetrySinks(ctx, st, getenv, opts, warn)
	if err != nil {
		return nil, err
	}
	if sink != nil {
		st.cfg.Telemetry.Sink = sink
	} else {
		st.cfg.Telemetry = nil
	}
	return func() {
		if closeSink == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), telemetryClose)
		defer cancel()
		if err := closeSink(cctx); err != nil {
			fmt.Fprintln(stderr, "aksml-score: telemetry sink:", err)
		}
	}, nil
}

// openTelemetrySinks opens aksml-score's telemetry sinks: the JSON-lines
// file below AKSML_TELEMETRY_DIR and the one of Options.TelemetrySink (OTLP
// in cmd/aksml-score), both when both are configured. Neither leaves
// telemetry off, with a warning.
func openTelemetrySinks(ctx context.Context, st *cliSettings, getenv func(string) string, opts Options, stderr io.Writer) (TelemetrySink, func(context.Context) error, error) {
	var sinks []TelemetrySink
	var closers []func(context.Context) error
	closeAll := func(ctx context.Context) error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c(ctx))
		}
		return errors.Join(errs...)
	}
	t := st.cfg.Telemetry
	if st.telemetryDir != "" {
		replica := t.Replica
		if replica == "" {
			replica, _ = os.Hostname()
		}
		p := TelemetryFile(st.telemetryDir, firstNonEmpty(t.Service, "ML service"), replica)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, nil, errcode.Wrap(errcode.FailedPrecondition, fmt.Errorf("telemetry: %w", err))
		}
		js, err := NewJSONLinesSink(p)
		if err != nil {
			return nil, nil, errcode.Wrap(errcode.FailedPrecondition, fmt.Errorf("telemetry: %w", err))
		}
		sinks = append(sinks, js)
		closers = append(closers, func(context.Context) error { return js.Close() })
	}
	if opts.TelemetrySink != nil {
		s, c, err := opts.TelemetrySink(ctx, getenv, firstNonEmpty(t.Service, "ML service"))
		if err != nil {
			_ = closeAll(ctx)
			return nil, nil, errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("telemetry: %w", err))
		}
		if s != nil {
			sinks = append(sinks, s)
		}
		if c != nil {
			closers = append(closers, c)
		}
	}
	switch len(sinks) {
	case 0:
		fmt.Fprintln(stderr, "aksml-score: AML_APP_INSIGHTS_ENABLED=true but neither AKSML_TELEMETRY_DIR nor OTEL_EXPORTER_OTLP_ENDPOINT names where telemetry goes: request telemetry is off")
		return nil, closeAll, nil
	case 1:
		return sinks[0], closeAll, nil
	}
	return MultiSink(sinks), closeAll, nil
}
