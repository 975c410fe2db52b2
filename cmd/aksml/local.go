package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube/local"
)

// localBackend is the Backend of compute targets on the workspace's
// local cluster.
const localBackend = "local"

// localState is what the background process of the local cluster writes
// into the workspace (local/state.json).
type localState struct {
	Name           string `json:"name"`
	PID            int    `json:"pid"`
	State          string `json:"state"` // Starting, Running, Stopped, Failed
	Error          string `json:"error,omitempty"`
	VMSize         string `json:"vmSize"`
	Agents         int    `json:"agentCount"`
	Kubeconfig     string `json:"kubeconfig"`
	ScoringBaseURL string `json:"scoringBaseUrl,omitempty"`
	FrontEndAddr   string `json:"frontEndAddr,omitempty"`
	// FrontEndTLSAddr is where the front end's HTTPS port is reached
	// (https://CNAME:PORT scoring URIs once TLS is on).
	FrontEndTLSAddr string  `json:"frontEndTlsAddr,omitempty"`
	StartedAt       string  `json:"startedAt,omitempty"`
	StartSeconds    float64 `json:"startSeconds,omitempty"`
	LogFile         string  `json:"logFile"`
}

var localColumns = []column{{"Name", "name"}, {"State", "state"}, {"PID", "pid"}, {"AgentCount", "agentCount"}, {"VmSize", "vmSize"}, {"ScoringBaseUrl", "scoringBaseUrl"}}

// localDir is the local cluster's directory in the workspace.
func (a *app) localDir() (string, error) {
	dir, err := a.workspaceDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "local"), nil
}

func readLocalState(dir string) (*localState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, errcode.Wrap(errcode.Internal, err)
	}
	var st localState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, errcode.Wrap(errcode.Internal, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err))
	}
	return &st, nil
}

func writeLocalState(dir string, st *localState) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

// current reads the local cluster's state, correcting a Running state
// whose process is gone.
func (a *app) currentLocal() (*localState, string, error) {
	dir, err := a.localDir()
	if err != nil {
		return nil, "", err
	}
	st, err := readLocalState(dir)
	if err != nil || st == nil {
		return st, dir, err
	}
	if (st.State == "Running" || st.State == "Starting") && !alive(st.PID) {
		st.State, st.Error = "Stopped", "its process exited"
	}
	return st, dir, nil
}

func (a *app) localState(ctx context.Context) string {
	st, _, err := a.currentLocal()
	if err != nil || st == nil {
		return "NotStarted"
	}
	return st.State
}

// localProvider reaches the workspace's local cluster.
func (a *app) localProvider(ctx context.Context) (driver.Provider, error) {
	if p, ok := a.providers[localBackend]; ok {
		return p, nil
	}
	st, _, err := a.currentLocal()
	if err != nil {
		return nil, err
	}
	if st == nil || st.State != "Running" {
		return nil, errcode.New(errcode.Unavailable, "the workspace's local cluster is not running: start it with `aksml local start`")
	}
	p := local.NewRemoteProvider(nil)
	if a.providers == nil {
		a.providers = map[string]driver.Provider{}
	}
	a.providers[localBackend] = p
	return p, nil
}

// attachLocal makes the running local cluster compute target name, its
// front end serving TLS as ssl says (none for the zero SSLConfig).
func (a *app) attachLocal(ctx context.Context, name string, ssl compute.SSLConfig) (*compute.Target, error) {
	st, _, err := a.currentLocal()
	if err != nil {
		return nil, err
	}
	if st == nil || st.State != "Running" {
		return nil, errcode.New(errcode.FailedPrecondition, "--local: the workspace's local cluster is not running: start it with `aksml local start`")
	}
	p, err := a.localProvider(ctx)
	if err != nil {
		return nil, err
	}
	t, err := compute.Attach(ctx, a.ws, name, compute.AttachConfig{Kubeconfig: st.Kubeconfig, ClusterPurpose: compute.DevTest, SSL: ssl},
		&compute.CreateOptions{Provider: p, Progress: a.progressWriter()})
	if err != nil {
		return nil, err
	}
	return t, t.Wait(ctx)
}

func (a *app) localCmd() *cobra.Command {
	var name, vmSize, frontEndAddr, frontEndTLSAddr string
	var agents int
	var timeout time.Duration
	start := &cobra.Command{
		Use:   "start",
		Short: "Start the workspace's local AKS in the background (it outlives the command)",
		Long: `Start the workspace's local AKS: a real Kubernetes control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, built by
scripts/kubebins), virtual nodes that run pods as processes on this machine,
and the in-cluster front-end. It runs in a background process that outlives
the command; its kubeconfig, address and log are in the workspace's local/
directory, and so is etcd's data: after 'local stop' and 'local start' the
services deployed on it come back.

Make it a compute target with 'aksml computetarget create aks -n NAME --local'.`,
		Example: example("aksml local start", "aksml local start --agents 2 --vm-size Standard_D2_v2"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.localStart(cmd.Context(), name, vmSize, agents, timeout)
		},
	}
	start.Flags().StringVar(&name, "name", "aksml-local", "cluster name")
	start.Flags().StringVar(&vmSize, "vm-size", "Standard_D3_v2", "node VM size (its vCPUs and memory size the nodes)")
	start.Flags().IntVar(&agents, "agents", 1, "number of nodes")
	start.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait for the cluster to serve")

	// serve is the background process itself.
	serve := &cobra.Command{
		Use:    "serve",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.localServe(cmd.Context(), name, vmSize, agents, frontEndAddr, frontEndTLSAddr)
		},
	}
	serve.Flags().StringVar(&frontEndAddr, "front-end-addr", "", "the front-end's address of the previous run, kept so scoring URIs stay valid")
	serve.Flags().StringVar(&frontEndTLSAddr, "front-end-tls-addr", "", "the front-end's HTTPS address of the previous run, kept so https scoring URIs stay valid")
	serve.Flags().StringVar(&name, "name", "aksml-local", "cluster name")
	serve.Flags().StringVar(&vmSize, "vm-size", "Standard_D3_v2", "node VM size")
	serve.Flags().IntVar(&agents, "agents", 1, "number of nodes")

	status := &cobra.Command{
		Use:     "status",
		Short:   "Show the local cluster's state, address and kubeconfig",
		Example: example("aksml local status", "aksml local status --query kubeconfig -o tsv"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, _, err := a.currentLocal()
			if err != nil {
				return err
			}
			if st == nil {
				return errcode.New(errcode.NotFound, "the workspace has no local cluster: start one with `aksml local start`")
			}
			return a.print(view{value: st, columns: localColumns})
		},
	}
	var stopTimeout time.Duration
	stop := &cobra.Command{
		Use:     "stop",
		Short:   "Stop the local cluster; its data stays in the workspace for the next start",
		Example: example("aksml local stop"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.localStop(cmd.Context(), stopTimeout)
		},
	}
	stop.Flags().DurationVar(&stopTimeout, "timeout", time.Minute, "how long to wait before killing it")
	var tail int
	logs := &cobra.Command{
		Use:     "logs",
		Short:   "Print the local cluster's log",
		Example: example("aksml local logs --tail 50"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.localDir()
			if err != nil {
				return err
			}
			f, err := os.Open(filepath.Join(dir, "cluster.log"))
			if err != nil {
				return errcode.Errorf(errcode.NotFound, "the local cluster has no log yet: %v", err)
			}
			defer f.Close()
			var lines []string
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if tail > 0 && len(lines) > tail {
					lines = lines[1:]
				}
			}
			for _, l := range lines {
				fmt.Fprintln(a.stdout, l)
			}
			return nil
		},
	}
	logs.Flags().IntVar(&tail, "tail", 0, "only the last N lines")
	return group("local", "The workspace's local AKS, running in the background between commands", start, status, stop, logs, serve)
}

// localStart starts the background process and waits until it serves.
func (a *app) localStart(ctx context.Context, name, vmSize string, agents int, timeout time.Duration) error {
	if _, err := a.workspace(ctx); err != nil {
		return err
	}
	st, dir, err := a.currentLocal()
	if err != nil {
		return err
	}
	if st != nil && (st.State == "Running" || st.State == "Starting") {
		fmt.Fprintf(a.stderr, "The local cluster %q is already running (pid %d).\n", st.Name, st.PID)
		return a.print(view{value: st, columns: localColumns})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	self, err := os.Executable()
	if err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	logPath := filepath.Join(dir, "cluster.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	defer logf.Close()
	wsDir, _ := a.workspaceDir()
	serveArgs := []string{"local", "serve", "-w", wsDir, "--name", name, "--vm-size", vmSize, "--agents", fmt.Sprint(agents)}
	if st != nil && st.FrontEndAddr != "" {
		// The same address as the previous run, so scoring URIs stay
		// valid across a restart.
		serveArgs = append(serveArgs, "--front-end-addr", st.FrontEndAddr)
	}
	if st != nil && st.FrontEndTLSAddr != "" {
		serveArgs = append(serveArgs, "--front-end-tls-addr", st.FrontEndTLSAddr)
	}
	_ = os.Remove(filepath.Join(dir, "state.json"))
	cmd := exec.Command(self, serveArgs...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	// Its own session: it outlives this command and the terminal's
	// signals.
	cmd.SysProcAttr = detachedAttr()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return errcode.Wrap(errcode.Internal, fmt.Errorf("start the local cluster: %w", err))
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p := a.newProgress("local cluster " + name)
	defer p.done()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, _ := readLocalState(dir)
		if st != nil && st.PID == cmd.Process.Pid {
			p.state(st.State, st.Error)
			if st.State == "Running" {
				return a.print(view{value: st, columns: localColumns})
			}
		} else {
			p.state("Starting", "")
		}
		select {
		case err := <-exited:
			st, _ := readLocalState(dir)
			msg := fmt.Sprintf("the local cluster's process exited (%v) after %s", err, time.Since(began).Round(time.Millisecond))
			if st != nil && st.Error != "" {
				msg += ": " + st.Error
			}
			return errcode.Errorf(errcode.Unavailable, "%s; its log is %s:\n%s", msg, logPath, lastLines(logPath, 15))
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return errcode.Errorf(errcode.DeadlineExceeded, "the local cluster did not serve within %s; its log is %s:\n%s", timeout, logPath, lastLines(logPath, 15))
		case <-ctx.Done():
			return errcode.Wrap(errcode.DeadlineExceeded, ctx.Err())
		case <-tick.C:
		}
	}
}

// localServe is the background process: it runs the cluster until
// SIGTERM or SIGINT, keeping local/state.json current.
func (a *app) localServe(ctx context.Context, name, vmSize string, agents int, frontEndAddr, frontEndTLSAddr string) error {
	dir, err := a.localDir()
	if err != nil {
		return err
	}
	size, ok := compute.LookupVMSize(vmSize)
	if !ok {
		return errcode.Errorf(errcode.InvalidArgument, "--vm-size %q: not a known VM size", vmSize)
	}
	st := &localState{Name: name, PID: os.Getpid(), State: "Starting", VMSize: size.Name, Agents: agents,
		Kubeconfig: filepath.Join(dir, "data", "admin.kubeconfig"), LogFile: filepath.Join(dir, "cluster.log")}
	opts := &local.Options{Dir: filepath.Join(dir, "data"), FrontEndAddr: frontEndAddr, FrontEndTLSAddr: frontEndTLSAddr}
	if err := writeLocalState(dir, st); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	began := time.Now()
	shape := driver.ClusterShape{AgentCount: agents, VMSize: size.Name, VCPUs: size.VCPUs, MemoryGB: size.MemoryGiB, GPUs: size.GPUs, GPUModel: size.GPUModel, Purpose: string(compute.DevTest)}
	c, err := local.Start(ctx, name, shape, opts)
	if err != nil && (opts.FrontEndAddr != "" || opts.FrontEndTLSAddr != "") && ctx.Err() == nil {
		// The old addresses may be taken: take any.
		fmt.Fprintf(a.stderr, "%s local cluster: front-end addresses %s, %s: %v; trying free ports\n", time.Now().Format(time.RFC3339), opts.FrontEndAddr, opts.FrontEndTLSAddr, err)
		opts.FrontEndAddr, opts.FrontEndTLSAddr = "", ""
		c, err = local.Start(ctx, name, shape, opts)
	}
	if err != nil {
		st.State, st.Error = "Failed", err.Error()
		_ = writeLocalState(dir, st)
		return err
	}
	defer c.Close()
	st.State = "Running"
	st.ScoringBaseURL = c.ScoringBaseURL()
	st.FrontEndAddr = strings.TrimPrefix(c.ScoringBaseURL(), "http://")
	st.FrontEndTLSAddr = c.ScoringTLSAddress()
	st.StartedAt = time.Now().UTC().Format(time.RFC3339)
	st.StartSeconds = time.Since(began).Seconds()
	if err := writeLocalState(dir, st); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "%s local cluster %q: serving at %s (HTTPS, once TLS is on, at %s) after %.1fs\n", time.Now().Format(time.RFC3339), name, st.ScoringBaseURL, st.FrontEndTLSAddr, st.StartSeconds)
	<-ctx.Done()
	fmt.Fprintf(a.stderr, "%s local cluster %q: stopping\n", time.Now().Format(time.RFC3339), name)
	err = c.Close()
	st.State = "Stopped"
	_ = writeLocalState(dir, st)
	return err
}

// localStop ends the background process and waits for it.
func (a *app) localStop(ctx context.Context, timeout time.Duration) error {
	st, dir, err := a.currentLocal()
	if err != nil {
		return err
	}
	if st == nil || !alive(st.PID) {
		fmt.Fprintln(a.stderr, "The local cluster is not running.")
		return nil
	}
	p := a.newProgress("local cluster " + st.Name)
	defer p.done()
	p.state("Stopping", "")
	terminate(st.PID)
	deadline := time.Now().Add(timeout)
	for alive(st.PID) {
		if time.Now().After(deadline) {
			killSession(st.PID)
		}
		select {
		case <-ctx.Done():
			return errcode.Wrap(errcode.DeadlineExceeded, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if cur, _ := readLocalState(dir); cur != nil && cur.State != "Stopped" {
		cur.State = "Stopped"
		_ = writeLocalState(dir, cur)
	}
	p.state("Stopped", "")
	return nil
}

// lastLines returns the last n lines of a file.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
