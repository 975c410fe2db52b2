package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
)

// env is what a run of the command sees of the outside: its streams, its
// environment and, in tests, the provider of in-process clusters.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// provider, when set, runs every compute target (tests give the
	// in-process simulator, which lives as long as the test); nil means
	// targets are reached by their records: a kubeconfig, or the
	// workspace's local cluster.
	provider driver.Provider
	// isTerminal says whether stderr is a terminal (progress style).
	isTerminal bool
	// now is the clock of progress lines; nil means time.Now.
	now func() time.Time
}

// Exit codes, one per class of failure (docs/cli.md lists them).
const (
	exitOK                 = 0
	exitInternal           = 1  // Internal, or an error without a code
	exitInvalidArgument    = 2  // InvalidArgument, and usage errors (unknown command or flag)
	exitNotFound           = 3  // NotFound
	exitAlreadyExists      = 4  // AlreadyExists
	exitConflict           = 5  // Conflict
	exitFailedPrecondition = 6  // FailedPrecondition
	exitUnauthenticated    = 7  // Unauthenticated
	exitUnavailable        = 8  // Unavailable, ResourceExhausted
	exitDeadlineExceeded   = 9  // DeadlineExceeded (also an interrupted wait)
	exitUnimplemented      = 10 // Unimplemented
)

// exitCode maps an error to the process exit code of its class.
func exitCode(err error) int {
	switch errcode.Of(err) {
	case errcode.InvalidArgument:
		return exitInvalidArgument
	case errcode.NotFound:
		return exitNotFound
	case errcode.AlreadyExists:
		return exitAlreadyExists
	case errcode.Conflict:
		return exitConflict
	case errcode.FailedPrecondition:
		return exitFailedPrecondition
	case errcode.Unauthenticated:
		return exitUnauthenticated
	case errcode.Unavailable, errcode.ResourceExhausted:
		return exitUnavailable
	case errcode.DeadlineExceeded:
		return exitDeadlineExceeded
	case errcode.Unimplemented:
		return exitUnimplemented
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return exitDeadlineExceeded
	}
	return exitInternal
}

// usageError marks errors of the command line itself (unknown command,
// unknown flag, missing argument).
func usageError(format string, args ...any) error {
	return errcode.Errorf(errcode.InvalidArgument, format, args...)
}

// run runs the command line args and returns the exit code. Errors go to
// stderr as "ERROR: (Code) message".
func run(ctx context.Context, args []string, e *env) int {
	if e.now == nil {
		e.now = time.Now
	}
	a := &app{env: e}
	root := a.rootCmd()
	root.SetArgs(normalizeArgs(args))
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	a.close()
	if err == nil {
		return exitOK
	}
	code := errcode.Of(err)
	if code == nil {
		// cobra's own errors (unknown command, bad flag) are usage errors.
		if isCobraUsage(err) {
			fmt.Fprintf(e.stderr, "ERROR: (%s) %v\nRun '%s --help' for usage.\n", errcode.InvalidArgument, err, root.Name())
			return exitInvalidArgument
		}
		fmt.Fprintf(e.stderr, "ERROR: %v\n", err)
		return exitCode(err)
	}
	fmt.Fprintf(e.stderr, "ERROR: (%s) %v\n", code, err)
	return exitCode(err)
}

func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "required flag", "accepts ", "requires at least", "if any flags in the group", "bad flag syntax"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// multiLetterShort are the single-dash flags of more than one letter that
// az ml accepts (-ct, -ic, -dc): pflag reads "-ct" as -c -t, so they are
// rewritten to their long form before parsing.
var multiLetterShort = map[string]string{"-ct": "--ct", "-ic": "--ic", "-dc": "--dc"}

// normalizeArgs rewrites az's multi-letter short flags ("-ct X", "-ct=X")
// to long flags, up to a "--" that ends the flags.
func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, value, hasValue := strings.Cut(a, "=")
		if long, ok := multiLetterShort[name]; ok {
			if hasValue {
				a = long + "=" + value
			} else {
				a = long
			}
		}
		out = append(out, a)
	}
	return out
}

// app holds the state of one command run: the workspace, once opened, and
// the output settings.
type app struct {
	*env
	wsFlag string
	output string
	query  string

	ws        *aml.Workspace
	providers map[string]driver.Provider
	closers   []func()
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	if a.ws != nil {
		_ = a.ws.Close()
	}
}

// defaultWorkspace is where commands look without -w and AKSML_WORKSPACE.
const defaultWorkspace = "~/.aksml"

// workspaceDir resolves the workspace directory: -w, then
// $AKSML_WORKSPACE, then ~/.aksml.
func (a *app) workspaceDir() (string, error) {
	dir := a.wsFlag
	if dir == "" {
		dir = a.getenv("AKSML_WORKSPACE")
	}
	if dir == "" {
		dir = defaultWorkspace
	}
	if dir == "~" || strings.HasPrefix(dir, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", errcode.Errorf(errcode.FailedPrecondition, "workspace %s: no home directory (%v): give -w DIR or AKSML_WORKSPACE", dir, err)
		}
		dir = filepath.Join(home, strings.TrimPrefix(dir, "~"))
	}
	return filepath.Abs(dir)
}

// workspace opens the workspace, which must exist (workspace create makes
// it).
func (a *app) workspace(ctx context.Context) (*aml.Workspace, error) {
	if a.ws != nil {
		return a.ws, nil
	}
	dir, err := a.workspaceDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "meta.db")); err != nil {
		return nil, errcode.Errorf(errcode.NotFound, "workspace %s does not exist: create it with `aksml workspace create -w %s` (or set AKSML_WORKSPACE)", dir, dir)
	}
	return a.openWorkspace(ctx, dir)
}

func (a *app) openWorkspace(ctx context.Context, dir string) (*aml.Workspace, error) {
	ws, err := aml.Open(ctx, dir, nil)
	if err != nil {
		return nil, err
	}
	a.ws = ws
	return ws, nil
}

// providerFor returns the provider that reaches the cluster of rec.
func (a *app) providerFor(ctx context.Context, rec compute.Record) (driver.Provider, error) {
	if rec.Stale() {
		return nil, errcode.Errorf(errcode.FailedPrecondition,
			"compute target %q ran in the process that created it (%s), which has exited: the record is stale; create the target again, or delete it with `aksml computetarget delete -n %s`",
			rec.Name, rec.Owner, rec.Name)
	}
	if a.provider != nil {
		return a.provider, nil
	}
	if a.providers == nil {
		a.providers = map[string]driver.Provider{}
	}
	switch {
	case rec.Backend == localBackend:
		return a.localProvider(ctx)
	case rec.Attach != nil && rec.Attach.Kubeconfig != "":
		p, ok := a.providers["kubernetes"]
		if !ok {
			p = kube.New(nil)
			a.providers["kubernetes"] = p
		}
		return p, nil
	}
	return nil, errcode.Errorf(errcode.FailedPrecondition,
		"compute target %q ran in the process that created it (backend %q) and is not reachable from here: delete it with `aksml computetarget delete -n %s`, or create one on the local cluster (`aksml local start`, `aksml computetarget create aks -n NAME --local`)",
		rec.Name, backendName(rec), rec.Name)
}

func backendName(rec compute.Record) string {
	if rec.Backend == "" {
		return "unknown"
	}
	return rec.Backend
}

// target opens compute target name, connected to its cluster.
func (a *app) target(ctx context.Context, name string) (*compute.Target, error) {
	ws, err := a.workspace(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := compute.Lookup(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	p, err := a.providerFor(ctx, rec)
	if err != nil {
		return nil, err
	}
	return compute.Get(ctx, ws, name, p)
}

// progressWriter is the show_output sink of long operations: stderr.
func (a *app) progressWriter() io.Writer { return a.stderr }

// addExample appends an example to a command's help.
func example(lines ...string) string {
	return "  " + strings.Join(lines, "\n  ")
}

// rootCmd builds the command tree.
func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "aksml",
		Short: "Deploy ML models as scoring web services on AKS or a local AKS, as az ml (Azure ML v1) does",
		Long: `aksml registers models and deploys them as scoring web services on Kubernetes:
a local AKS started with 'aksml local start', or any cluster attached by
kubeconfig. Its commands and files (inferenceconfig.json,
deploymentconfig.json) are those of az ml, the Azure ML v1 CLI.

The workspace is a directory: -w/--workspace, else $AKSML_WORKSPACE, else
~/.aksml. Show and list commands print JSON unless -o says otherwise;
--query filters the output with a JMESPath expression. Errors go to stderr
as "ERROR: (Code) message" with an exit code per class (see docs/cli.md).

Go-handler models are code of a Go program: deploy them with the Go API
(package aml); the CLI deploys entry scripts (score.py).`,
		Example: example(
			"aksml workspace create",
			"aksml local start",
			"aksml computetarget create aks -n dev --local",
			"aksml model register -n mymodel -p model.pkl",
			"aksml model deploy -ct dev -m mymodel:1 -n myservice -ic inferenceconfig.json -dc deploymentconfig.json",
			"aksml service run -n myservice -d '{\"data\": [[1, 2, 3, 4]]}'"),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&a.wsFlag, "workspace", "w", "", "workspace directory (default $AKSML_WORKSPACE, else ~/.aksml)")
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "json", "output format: json, table, tsv or yaml")
	root.PersistentFlags().StringVar(&a.query, "query", "", "JMESPath query applied to the output (https://jmespath.org)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		switch a.output {
		case "json", "table", "tsv", "yaml", "jsonc", "none":
		default:
			return usageError("--output %q: must be json, table, tsv, yaml or none", a.output)
		}
		return nil
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError("%v", err)
	})
	root.AddCommand(a.workspaceCmd(), a.modelCmd(), a.serviceCmd(), a.computeCmd(), a.endpointCmd(), a.localCmd())
	return root
}

// group returns a command that only holds subcommands; run without one it
// is a usage error naming them.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return usageError("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names(cmd), ", "))
		},
	}
	c.AddCommand(subs...)
	return c
}

func names(cmd *cobra.Command) []string {
	var out []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			out = append(out, c.Name())
		}
	}
	return out
}

// required marks flags required.
func required(cmd *cobra.Command, flags ...string) {
	for _, f := range flags {
		_ = cmd.MarkFlagRequired(f)
	}
}

// parseTags reads --tag k=v values.
func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	var errs []error
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "--tag %q: must be KEY=VALUE with a non-empty key", t))
			continue
		}
		out[k] = v
	}
	return out, errors.Join(errs...)
}
