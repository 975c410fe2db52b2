package scoring

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
	"k8s.io/utils/clock"
)

// Defaults applied by NewServer to zero fields of Config.
const (
	// DefaultWorkers is the number of Python worker processes, as
	// azmlinfsrv's --worker_count defaults to 1.
	DefaultWorkers = 1
	// DefaultScoringTimeout bounds one run() call, as scoring_timeout_ms
	// defaults to 60000 in Azure ML.
	DefaultScoringTimeout = 60 * time.Second
	// DefaultMaxBodyBytes is the request body limit: the 100 MB payload limit
	// of azureml-fe.
	DefaultMaxBodyBytes int64 = 100 << 20
	// DefaultInterpreter is looked up on PATH when Config.Interpreter is empty.
	DefaultInterpreter = "python3"
	// DefaultLogLines is how many log lines a replica keeps (and how many
	// lines of init output).
	DefaultLogLines = 10000
	// MaxWorkers caps Config.Workers.
	MaxWorkers = 256
	// MaxBatchSizeLimit caps Config.MaxBatchSize.
	MaxBatchSizeLimit = 1024
	// MaxBatchDelayLimit caps Config.MaxBatchDelay.
	MaxBatchDelayLimit = 10 * time.Second
)

// Config describes one replica: either a Go model (Handler) or a Python entry
// script (EntryScript). The zero value of every other field means its
// default.
type Config struct {
	// Handler builds the Go model of this replica. Exactly one of Handler and
	// EntryScript must be set.
	Handler NewHandler

	// EntryScript is the score.py to host: a path relative to SourceDir, or
	// an absolute path. It must define init() and run(raw_data). Empty with
	// no Handler and a set AppRoot means main.py in AppRoot (else in
	// SourceDir), as azmlinfsrv imports main when no entry script is given.
	EntryScript string
	// SourceDir is the source directory (AZUREML_SOURCE_DIRECTORY, on the
	// workers' sys.path). Empty means the directory of EntryScript.
	SourceDir string
	// AppRoot is the app root (AML_APP_ROOT): the workers' working
	// directory, first on their sys.path, and where swagger files are looked
	// for first. Empty means a directory the server makes at Start (and
	// removes at Close) laid out as an Azure ML container's
	// /var/azureml-app: the source directory under its own name and, when
	// ModelDir lies in an azureml-models directory, that directory, both as
	// symbolic links. So a script that opens ./<source dir name>/file or
	// ./azureml-models/... works as it does in Azure.
	AppRoot string
	// ModelDir is the value of AZUREML_MODEL_DIR: for one model
	// <root>/azureml-models/NAME/VERSION, for several <root>/azureml-models
	// with NAME/VERSION/... below it. Relative paths are made absolute; a
	// directory that does not exist is passed on all the same, as
	// azmlinfsrv does. Empty means the variable is unset.
	ModelDir string
	// Interpreter is the Python interpreter (an environment's user-managed
	// interpreter path). Empty means DefaultInterpreter on PATH.
	Interpreter string
	// Env holds extra environment variables for the workers (an
	// environment's variables). They are added to the server's own
	// environment; AZUREML_MODEL_DIR, AZUREML_ENTRY_SCRIPT and
	// AZUREML_SOURCE_DIRECTORY are set by the server.
	Env map[string]string
	// Workers is the number of Python worker processes, each serving one
	// request at a time (azmlinfsrv --worker_count). Zero means
	// DefaultWorkers. A Go Handler ignores it: its Run is called concurrently.
	Workers int

	// ScoringTimeout bounds one run: a Python worker that takes longer is
	// killed and replaced and the request gets 504; a Go Run past it gets
	// 504 too. Zero means DefaultScoringTimeout.
	ScoringTimeout time.Duration
	// MaxBatchSize turns request batching on (an aksml extension; see
	// docs/batching.md): concurrent /score requests are gathered, up to
	// MaxBatchSize at a time, and given together to the entry script's
	// run_batch(inputs) or to a Go handler's RunBatch (BatchHandler). Each
	// Python worker (each of Workers batch slots for a Go handler) runs one
	// batch at a time. Zero means batching is off; 1..MaxBatchSizeLimit.
	MaxBatchSize int
	// MaxBatchDelay is the longest the oldest request of a batch that is
	// not full may wait for more before the batch leaves. The wait is spent
	// only on the last free worker: while another worker is free too, a
	// partial batch leaves at once. Zero means no waiting: a batch is what
	// has queued by the time a worker is free. At most MaxBatchDelayLimit;
	// only with MaxBatchSize.
	MaxBatchDelay time.Duration

	// MaxBodyBytes is the request body limit; larger bodies get 413. Zero
	// means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ServiceName is the title of /swagger.json (SERVICE_NAME). Empty means
	// "ML service", azmlinfsrv's default.
	ServiceName string
	// ServiceVersion is the version in /swagger.json (SERVICE_VERSION).
	// Empty means "1.0".
	ServiceVersion string
	// ServicePathPrefix prefixes the paths in /swagger.json
	// (SERVICE_PATH_PREFIX), for a replica reached under a path.
	ServicePathPrefix string
	// CORSOrigins turns CORS on for these origins (AML_CORS_ORIGINS,
	// azmlinfsrv --access_control_allow_origins, split with ParseOrigins);
	// "*" allows every origin. Empty means CORS is off.
	CORSOrigins []string
	// ServerVersion is the x-ms-server-version header of every answer.
	// Empty means DefaultServerVersion; HideServerVersion leaves it out
	// (azmlinfsrv's SERVER_VERSION_LOG_RESPONSE_ENABLED=false).
	ServerVersion     string
	HideServerVersion bool
	// LogLines is how many log lines the replica keeps. Zero means
	// DefaultLogLines.
	LogLines int

	// DataCollection, when set, turns on azureml.monitoring.
	// ModelDataCollector for a Python entry script (collect_model_data):
	// the workers get AML_MODEL_DC_STORAGE_ENABLED=true and their records go
	// to DataCollection.Store. Nil means collection is off (the variable is
	// false and collect() is a no-op). A Go Handler ignores it.
	DataCollection *DataCollection

	// Telemetry, when set, turns on request telemetry (enable_app_insights):
	// every /score request, and what a Python run() prints while serving
	// it, becomes a record sent to Telemetry.Sink off the request path. The
	// workers get AML_APP_INSIGHTS_ENABLED=true (false when nil). With
	// DataCollection or Telemetry on, a Python worker also learns each
	// request's id (see ModelDataCollector's correlation id in
	// docs/data-collection.md).
	Telemetry *Telemetry

	// MetricsKey, when set, lets callers that present it as a Bearer
	// credential read GET /metrics (the replica's counters in the
	// Prometheus text format); callers on the replica's own machine (a
	// loopback address) read it without. Others get Flask's 404, as for
	// any unknown path.
	MetricsKey string

	// LogOutput, when set, also receives every log line as it is written
	// (aksml-score sets it to stdout, so container logs show the replica log).
	LogOutput io.Writer

	// Logger receives the server's own events. Nil discards them.
	Logger *slog.Logger
	// Clock drives scoring timeouts, restart back-off and log timestamps.
	// Nil means the real clock.
	Clock clock.WithDelayedExecution

	// capture, when set, starts a capture writer process for a replica
	// hosting Python with data collection or telemetry on (aksml-score).
	capture *captureProcess
}

// withDefaults validates c and returns a copy with defaults applied and paths
// made absolute. It reports every broken rule at once.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, format, args...))
	}
	switch {
	case c.Handler == nil && c.EntryScript == "":
		if main := c.mainScript(); main != "" {
			c.EntryScript = main
		} else {
			bad("entry_script is empty, no Go handler is set and there is no main.py in the app root: one of them is required")
		}
	case c.Handler != nil && c.EntryScript != "":
		bad("entry_script %q and a Go handler are both set: set only one", c.EntryScript)
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		bad("worker_count %d is outside 1..%d", c.Workers, MaxWorkers)
	} else if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.ScoringTimeout < 0 {
		bad("scoring_timeout %v is negative", c.ScoringTimeout)
	} else if c.ScoringTimeout == 0 {
		c.ScoringTimeout = DefaultScoringTimeout
	}
	switch {
	case c.MaxBatchSize < 0 || c.MaxBatchSize > MaxBatchSizeLimit:
		bad("max_batch_size %d is outside 1..%d (0 turns batching off)", c.MaxBatchSize, MaxBatchSizeLimit)
	case c.MaxBatchDelay < 0 || c.MaxBatchDelay > MaxBatchDelayLimit:
		bad("max_batch_delay %v is outside 0..%v", c.MaxBatchDelay, MaxBatchDelayLimit)
	case c.MaxBatchDelay > 0 && c.MaxBatchSize == 0:
		bad("max_batch_delay %v is set but max_batch_size is not: batching is off without max_batch_size", c.MaxBatchDelay)
	}
	if c.MaxBodyBytes < 0 {
		bad("max_request_body_bytes %d is negative", c.MaxBodyBytes)
	} else if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.LogLines < 0 {
		bad("log_lines %d is negative", c.LogLines)
	} else if c.LogLines == 0 {
		c.LogLines = DefaultLogLines
	}
	if c.ServiceName == "" {
		c.ServiceName = "ML service"
	}
	if err := c.DataCollection.validate(); err != nil {
		bad("data collection: %v", err)
	} else if c.DataCollection != nil {
		dc := *c.DataCollection
		if dc.Buffer == 0 {
			dc.Buffer = DefaultDataCollectionBuffer
		}
		c.DataCollection = &dc
	}
	if err := c.Telemetry.validate(); err != nil {
		bad("telemetry: %v", err)
	} else if c.Telemetry != nil {
		t := *c.Telemetry
		if t.Buffer == 0 {
			t.Buffer = DefaultTelemetryBuffer
		}
		if t.Service == "" {
			t.Service = c.ServiceName
		}
		if t.Replica == "" {
			t.Replica, _ = os.Hostname()
		}
		c.Telemetry = &t
	}
	if c.ServiceVersion == "" {
		c.ServiceVersion = "1.0"
	}
	if c.ServerVersion == "" {
		c.ServerVersion = DefaultServerVersion
	}
	if c.AppRoot != "" {
		if abs, err := filepath.Abs(c.AppRoot); err == nil {
			c.AppRoot = abs
		}
		if fi, err := os.Stat(c.AppRoot); err != nil || !fi.IsDir() {
			bad("app_root %q is not a directory", c.AppRoot)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			bad("environment_variables key %q is not a valid variable name", k)
		}
	}
	if c.EntryScript != "" && c.Handler == nil {
		errs = append(errs, c.resolvePython()...)
	}
	if c.ModelDir != "" {
		if abs, err := filepath.Abs(c.ModelDir); err == nil {
			c.ModelDir = abs
		}
	}
	return c, errors.Join(errs...)
}

// mainScript is the main.py azmlinfsrv would import when no entry script is
// given: in the app root, else in the source directory; "" if none.
func (c *Config) mainScript() string {
	for _, d := range []string{c.AppRoot, c.SourceDir} {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "main.py")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
		}
	}
	return ""
}

// resolvePython fills the absolute entry script, source directory and
// interpreter paths.
func (c *Config) resolvePython() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, format, args...))
	}
	script := c.EntryScript
	if c.SourceDir == "" {
		abs, err := filepath.Abs(script)
		if err != nil {
			bad("entry_script %q: %v", script, err)
			return errs
		}
		script = abs
		c.SourceDir = filepath.Dir(abs)
	} else {
		abs, err := filepath.Abs(c.SourceDir)
		if err != nil {
			bad("source_directory %q: %v", c.SourceDir, err)
			return errs
		}
		c.SourceDir = abs
		if !filepath.IsAbs(script) {
			script = filepath.Join(c.SourceDir, script)
		}
	}
	if fi, err := os.Stat(c.SourceDir); err != nil || !fi.IsDir() {
		bad("source_directory %q is not a directory", c.SourceDir)
	}
	if !strings.HasSuffix(script, ".py") {
		bad("entry_script %q is not a .py file", c.EntryScript)
	} else if fi, err := os.Stat(script); err != nil || fi.IsDir() {
		bad("entry_script %q does not exist (looked for %s)", c.EntryScript, script)
	}
	c.EntryScript = script
	interp := c.Interpreter
	if interp == "" {
		interp = DefaultInterpreter
	}
	path, err := exec.LookPath(interp)
	if err != nil {
		bad("interpreter %q is not an executable file or is not on PATH: %v", interp, err)
	} else {
		c.Interpreter = path
	}
	return errs
}

// entryRel is the entry script relative to the source directory (for
// messages), or the absolute path when it lies outside.
func (c *Config) entryRel() string {
	rel, err := filepath.Rel(c.SourceDir, c.EntryScript)
	if err != nil || strings.HasPrefix(rel, "..") {
		return c.EntryScript
	}
	return filepath.ToSlash(rel)
}

// workerEnv is the environment of a Python worker running in appRoot.
func (c *Config) workerEnv(appRoot string) []string {
	set := map[string]string{}
	var order []string
	add := func(k, v string) {
		if _, ok := set[k]; !ok {
			order = append(order, k)
		}
		set[k] = v
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		add(k, v)
	}
	for k, v := range c.Env {
		add(k, v)
	}
	add("AZUREML_ENTRY_SCRIPT", c.EntryScript)
	add("AZUREML_SOURCE_DIRECTORY", c.SourceDir)
	add("AML_APP_ROOT", appRoot)
	if c.ModelDir != "" {
		add("AZUREML_MODEL_DIR", c.ModelDir)
	} else {
		delete(set, "AZUREML_MODEL_DIR")
	}
	add("PYTHONUNBUFFERED", "1")
	// As in a v1 container: whether ModelDataCollector collects. The
	// records go to the server on fd 5.
	if c.DataCollection != nil {
		add("AML_MODEL_DC_STORAGE_ENABLED", "true")
		add("AKSML_DC_FD", "5")
	} else {
		add("AML_MODEL_DC_STORAGE_ENABLED", "false")
		delete(set, "AKSML_DC_FD")
	}
	// As in a v1 container: whether Application Insights is on. The lines
	// run() prints go to the server on fd 5 too. AML_APP_INSIGHTS_KEY (an
	// instrumentation key) is left as the environment sets it: aksml sends
	// telemetry to its own sink, not to an Application Insights resource.
	if c.Telemetry != nil {
		add("AML_APP_INSIGHTS_ENABLED", "true")
		add("AKSML_TELEMETRY_FD", "5")
	} else {
		add("AML_APP_INSIGHTS_ENABLED", "false")
		delete(set, "AKSML_TELEMETRY_FD")
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		if v, ok := set[k]; ok {
			env = append(env, fmt.Sprintf("%s=%s", k, v))
		}
	}
	return env
}

// DefaultServerVersion is the x-ms-server-version header of aksml-score's
// answers (azmlinfsrv sends azmlinfsrv/VERSION).
var DefaultServerVersion = "aksml-score/" + moduleVersion()

// moduleVersion is the version of the aksml module in this binary, or "dev".
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := ""
	if bi.Main.Path == "github.com/aksml/aksml" {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/aksml/aksml" {
			v = d.Version
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return strings.TrimPrefix(v, "v")
}
