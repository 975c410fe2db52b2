package scoring

import (
	"context"
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
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
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
func Main(h NewHandler) {
	if h == nil && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(pythonHostProcs(runtime.GOMAXPROCS(0)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], h, os.Stdout, os.Stderr)
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

// Run is Main without the process exit and signal handling: it parses args,
// starts the replica, listens on --address:--port, prints
// "listening on http://ADDR" to stderr, and serves until ctx ends or init
// fails (then it returns the init error, as a container would exit).
//
// Flags (names as azmlinfsrv's, plus aksml's own):
//
//	--entry_script PATH          score.py to host (default $AZUREML_ENTRY_SCRIPT)
//	--source_dir DIR             source directory (default $AML_APP_ROOT, else the script's directory)
//	--model_dir DIR              AZUREML_MODEL_DIR (default $AZUREML_MODEL_DIR)
//	--port N                     port (default 5001; 0 picks a free one)
//	--address IP                 address to listen on (default 127.0.0.1)
//	--worker_count N             Python workers (default $WORKER_COUNT, else 1)
//	--interpreter PATH           Python interpreter (default $AKSML_PYTHON, else python3)
//	--scoring_timeout_ms N       run() time limit (default 60000)
//	--max_request_body_bytes N   body limit (default 104857600)
//	--service_name NAME          title of /swagger.json
//	--env KEY=VALUE              extra worker environment variable (repeatable)
func Run(ctx context.Context, args []string, h NewHandler, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aksml-score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envFlag{}
	entry := fs.String("entry_script", os.Getenv("AZUREML_ENTRY_SCRIPT"), "entry script (score.py) to host")
	source := fs.String("source_dir", os.Getenv("AML_APP_ROOT"), "source directory (working directory of the workers)")
	modelDir := fs.String("model_dir", os.Getenv("AZUREML_MODEL_DIR"), "model directory (AZUREML_MODEL_DIR)")
	port := fs.Int("port", 5001, "port to listen on (0 picks a free port)")
	addr := fs.String("address", "127.0.0.1", "address to listen on")
	workers := fs.Int("worker_count", envInt("WORKER_COUNT", DefaultWorkers), "number of Python worker processes")
	interp := fs.String("interpreter", os.Getenv("AKSML_PYTHON"), "Python interpreter (default python3 on PATH)")
	timeoutMS := fs.Int("scoring_timeout_ms", int(DefaultScoringTimeout/time.Millisecond), "time limit of one run() in milliseconds")
	maxBody := fs.Int64("max_request_body_bytes", DefaultMaxBodyBytes, "request body limit in bytes")
	name := fs.String("service_name", "aksml-score", "service name shown in /swagger.json")
	fs.Var(env, "env", "extra environment variable KEY=VALUE for the workers (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errcode.Wrap(errcode.InvalidArgument, err)
	}
	if fs.NArg() > 0 {
		return errcode.Errorf(errcode.InvalidArgument, "unexpected arguments %q", fs.Args())
	}
	if *port < 0 || *port > 65535 {
		return errcode.Errorf(errcode.InvalidArgument, "port %d is outside 0..65535", *port)
	}
	if *timeoutMS <= 0 {
		return errcode.Errorf(errcode.InvalidArgument, "scoring_timeout_ms %d is not positive", *timeoutMS)
	}
	cfg := Config{
		Handler:        h,
		ModelDir:       *modelDir,
		Workers:        *workers,
		Interpreter:    *interp,
		Env:            env,
		ScoringTimeout: time.Duration(*timeoutMS) * time.Millisecond,
		MaxBodyBytes:   *maxBody,
		ServiceName:    *name,
		LogOutput:      stdout,
		Logger:         slog.New(slog.DiscardHandler),
	}
	if h == nil {
		cfg.EntryScript = *entry
		cfg.SourceDir = *source
		if cfg.SourceDir != "" && cfg.EntryScript != "" && !filepath.IsAbs(cfg.EntryScript) {
			// A relative --entry_script that exists from the working
			// directory wins over the source-directory reading.
			if _, err := os.Stat(filepath.Join(cfg.SourceDir, cfg.EntryScript)); err != nil {
				if abs, err := filepath.Abs(cfg.EntryScript); err == nil {
					cfg.EntryScript = abs
				}
			}
		}
	} else {
		var set bool
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "entry_script" })
		if set {
			return errcode.Errorf(errcode.InvalidArgument, "entry_script %q cannot be used with a Go model", *entry)
		}
	}
	srv, err := NewServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort(*addr, strconv.Itoa(*port)))
	if err != nil {
		return errcode.Wrap(errcode.Unavailable, err)
	}
	fmt.Fprintf(stderr, "aksml-score: listening on http://%s\n", ln.Addr())
	if err := srv.Start(ctx); err != nil {
		ln.Close()
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
	if err := Serve(sctx, ln, srv); err != nil {
		return err
	}
	<-srv.InitDone()
	if err := srv.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
