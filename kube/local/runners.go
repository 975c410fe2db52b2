package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/kube/fe"
	"github.com/aksml/aksml/scoring"
)

// ContainerEnv is set in the environment of a process the local cluster
// starts for a container; its value names the program. A program that
// imports this package runs that program instead of its main when it is
// set (see init): the local cluster re-executes the running binary rather
// than needing aksml-score installed.
const ContainerEnv = "AKSML_LOCAL_CONTAINER"

// The values of ContainerEnv: the scoring server and the front-end.
const (
	scorer    = "aksml-score"
	feProgram = "aksml-fe"
)

func init() {
	if os.Getenv(scoring.EnvCaptureWriterProcess) == "1" {
		// An aksml-score container's capture writer process: this
		// binary started again by the scoring server.
		scoring.Main(nil) // exits
	}
	switch os.Getenv(ContainerEnv) {
	case scorer:
		_ = os.Unsetenv(ContainerEnv)
		scoring.Main(nil) // exits
	case feProgram:
		_ = os.Unsetenv(ContainerEnv)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err := fe.Run(ctx, os.Args[1:], os.Stderr, nil)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "aksml-fe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// goRunner runs a Go model's replica in this process: the scoring server
// (scoring.Run, what aksml-score runs) with the handler, on the pod's
// loopback address.
type goRunner struct{ tmpl driver.ReplicaTemplate }

func (g goRunner) run(ctx context.Context, rc runContext) error {
	args := slices.Clone(rc.args)
	if g.tmpl.ModelDir != "" {
		args = append(args, "--model_dir="+g.tmpl.ModelDir)
	}
	err := scoring.Run(ctx, args, g.tmpl.Handler, rc.log, rc.log)
	if err != nil {
		fmt.Fprintf(rc.log, "aksml-score: %v\n", err)
	}
	return err
}

// processRunner runs a container as a child process: this binary
// re-executed as program (ContainerEnv=program) with the container's
// arguments plus extra, in dir, with the container's environment. It is
// stopped with SIGTERM, then SIGKILL after ten seconds; the kernel kills it
// if this process dies.
type processRunner struct {
	program string
	extra   []string
	dir     string
	// app, when set, gives each run a fresh Azure-style app root as its
	// working directory and AML_APP_ROOT, removed when the process ends.
	app *appRootDirs
}

// appRootDirs are the folders an entry script's app root links to.
type appRootDirs struct{ source, models string }

// scoreProcess runs an entry script's replica: the scoring server with the
// service's source directory, entry script, models and interpreter. It
// runs in an app root laid out as an Azure ML container's
// (scoring.NewAppRoot: the source directory under its own name, the
// azureml-models folder), so a script opens ./<source_dir_name>/file as it
// does in Azure and in the simulator.
func scoreProcess(t driver.ReplicaTemplate) processRunner {
	extra := []string{"--entry_script=" + t.EntryScript}
	if t.SourceDir != "" {
		extra = append(extra, "--source_dir="+t.SourceDir)
	}
	if t.ModelDir != "" {
		extra = append(extra, "--model_dir="+t.ModelDir)
	}
	if t.Interpreter != "" {
		extra = append(extra, "--interpreter="+t.Interpreter)
	}
	p := processRunner{program: scorer, extra: extra}
	if t.SourceDir != "" {
		p.app = &appRootDirs{source: t.SourceDir, models: t.ModelDir}
	}
	return p
}

// frontEndProcess runs a front-end pod: fe.Run (cmd/aksml-fe)
// reaching the API server through the cluster's kubeconfig and the pods at
// their loopback addresses.
func (c *Cluster) frontEndProcess() processRunner {
	return processRunner{program: feProgram, extra: []string{
		"--kubeconfig=" + c.cp.Kubeconfig, "--context=kubetest",
		fmt.Sprintf("--replica-address-prefix=10.244.=127.%d.", c.octet),
	}}
}

func (p processRunner) run(ctx context.Context, rc runContext) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append(slices.Clone(rc.args), p.extra...)
	cmd := exec.CommandContext(ctx, self, args...)
	env := []string{ContainerEnv + "=" + p.program}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(rc.env)) {
		env = append(env, k+"="+rc.env[k])
	}
	cmd.Dir = p.dir
	if p.app != nil {
		root, remove, err := scoring.NewAppRoot(p.app.source, p.app.models)
		if err != nil {
			return err
		}
		defer remove()
		// Last, so that it wins over the container's own environment.
		cmd.Dir = root
		env = append(env, "AML_APP_ROOT="+root)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = rc.log, rc.log
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil // stopped on purpose
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("exit code %d: %s", ee.ExitCode(), lastLine(rc.log))
	}
	return err
}

// lastLine is the last line the container wrote, for its termination
// message.
func lastLine(r *logRing) string {
	if lines := r.lines(1); len(lines) > 0 {
		return lines[0]
	}
	return ""
}

// frontEndRunner runs a front-end pod in this process: the router of
// package frontend programmed from the cluster's watches (fe.FrontEnd),
// as cmd/aksml-fe does, with the cluster's injected clock for tokens (a
// process cannot share it). It reaches the pods at their loopback
// addresses.
type frontEndRunner struct{ c *Cluster }

func (f frontEndRunner) run(ctx context.Context, rc runContext) error {
	fa, err := fe.ParseArgs(rc.args, rc.log)
	if err != nil {
		return err
	}
	o := fa.Serve
	o.Clock, o.ReplicaURL = f.c.opts.Clock, f.c.replicaURL
	o.Logger = slog.New(slog.NewJSONHandler(rc.log, nil))
	return fe.Serve(ctx, f.c.cp.Client, &o)
}

// logRing keeps the last lines a container wrote.
type logRing struct {
	mu      sync.Mutex
	buf     []string
	partial []byte
}

const logLines = 2000

func newLogRing() *logRing { return &logRing{} }

// Write splits p into lines.
func (r *logRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := append(r.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		r.buf = append(r.buf, strings.TrimRight(string(data[:i]), "\r"))
		data = data[i+1:]
	}
	if len(r.buf) > logLines {
		r.buf = slices.Clone(r.buf[len(r.buf)-logLines:])
	}
	r.partial = slices.Clone(data)
	return len(p), nil
}

// lines returns the last n lines (all when n <= 0), a partial last line
// included.
func (r *logRing) lines(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.buf)
	if len(r.partial) > 0 {
		out = append(out, string(r.partial))
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func (r *logRing) text(n int) string {
	lines := r.lines(n)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}
