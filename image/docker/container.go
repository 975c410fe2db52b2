package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Container is a running (or stopped) container started by RunContainer.
// Its published port is bound to 127.0.0.1 only.
type Container struct {
	// ID is the engine's container ID; Image the image it runs.
	ID, Image string
	// Addr is the published port's address, "127.0.0.1:PORT".
	Addr string

	e *Engine
}

// RunContainer is RunContainer(ctx, e, ref, opts): Engine is an
// image.ContainerRunner.
func (e *Engine) RunContainer(ctx context.Context, ref string, opts *image.RunOptions) (image.RunningContainer, error) {
	c, err := RunContainer(ctx, e, ref, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// envVarName is the rule for environment variable names.
var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// URL returns "http://" + Addr.
func (c *Container) URL() string { return "http://" + c.Addr }

// RunContainer creates and starts a container from image with its port
// published on 127.0.0.1, and returns it once the engine reports it
// started (not yet ready: probe its URL). The container runs under an init
// process, so it stops on SIGTERM whatever its program does with signals.
// If anything fails after creation, the container is removed. Errors:
// errcode.NotFound for an unknown image, errcode.InvalidArgument for bad
// options, errcode.Unavailable without an engine.
func RunContainer(ctx context.Context, e *Engine, ref string, opts *image.RunOptions) (*Container, error) {
	if opts == nil {
		opts = &image.RunOptions{}
	}
	var errs []error
	port := opts.Port
	if port == 0 {
		port = image.ScoringPort
	}
	if port < 1 || port > 65535 {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "port %d is outside 1-65535", opts.Port))
	}
	if opts.HostPort < 0 || opts.HostPort > 65535 {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "host port %d is outside 0-65535", opts.HostPort))
	}
	if opts.CPUs < 0 {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "cpus %v is negative", opts.CPUs))
	}
	if opts.MemoryBytes < 0 {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "memory %d is negative", opts.MemoryBytes))
	}
	var mounts []mount.Mount
	for _, m := range opts.Mounts {
		if !path.IsAbs(m.Source) || !path.IsAbs(m.Target) {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "mount %s -> %s: both paths must be absolute", m.Source, m.Target))
			continue
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	var env []string
	for _, k := range slices.Sorted(maps.Keys(opts.Env)) {
		if !envVarName.MatchString(k) {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "environment variable name %q is not valid", k))
			continue
		}
		env = append(env, k+"="+opts.Env[k])
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	labels := map[string]string{image.LabelManaged: "true"}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	cport, err := network.ParsePort(strconv.Itoa(port) + "/tcp")
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "port %d: %v", port, err)
	}
	hostPort := ""
	if opts.HostPort > 0 {
		hostPort = strconv.Itoa(opts.HostPort)
	}
	init := true
	created, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: opts.Name,
		Config: &container.Config{
			Image:        ref,
			Env:          env,
			Cmd:          opts.Cmd,
			Labels:       labels,
			ExposedPorts: network.PortSet{cport: struct{}{}},
		},
		HostConfig: &container.HostConfig{
			PortBindings: network.PortMap{cport: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hostPort}}},
			Mounts:       mounts,
			Init:         &init,
			Resources: container.Resources{
				NanoCPUs: int64(opts.CPUs * 1e9),
				Memory:   opts.MemoryBytes,
			},
		},
	})
	if err != nil {
		return nil, e.wrap(err, "creating a container from %s", ref)
	}
	c := &Container{ID: created.ID, Image: ref, e: e}
	fail := func(err error) (*Container, error) {
		// Remove with a fresh context: ctx may be what ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = c.Remove(rctx)
		return nil, err
	}
	if _, err := e.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return fail(e.wrap(err, "starting container %s from %s", short(c.ID), ref))
	}
	ins, err := e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fail(e.wrap(err, "inspecting container %s", short(c.ID)))
	}
	var bound string
	if ns := ins.Container.NetworkSettings; ns != nil {
		for _, b := range ns.Ports[cport] {
			if b.HostIP.Is4() && b.HostPort != "" {
				bound = b.HostPort
				break
			}
		}
	}
	if bound == "" {
		state := ""
		if ins.Container.State != nil {
			state = fmt.Sprintf(" (state %s, exit code %d)", ins.Container.State.Status, ins.Container.State.ExitCode)
		}
		return fail(errcode.Errorf(errcode.Unavailable, "container %s from %s has no published port for %s%s", short(c.ID), ref, cport, state))
	}
	c.Addr = "127.0.0.1:" + bound
	return c, nil
}

// Logs returns the container's stdout and stderr, interleaved, as plain
// text. Close the reader when done.
func (c *Container) Logs(ctx context.Context, opts *image.LogOptions) (io.ReadCloser, error) {
	if opts == nil {
		opts = &image.LogOptions{}
	}
	tail := "all"
	if opts.Tail > 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	rc, err := c.e.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail})
	if err != nil {
		return nil, c.e.wrap(err, "reading logs of container %s", short(c.ID))
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		rc.Close()
		pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, rc: rc}, nil
}

type logReader struct {
	*io.PipeReader
	rc io.Closer
}

func (l *logReader) Close() error {
	l.rc.Close()
	return l.PipeReader.Close()
}

// State returns the container's state.
func (c *Container) State(ctx context.Context) (*image.ContainerState, error) {
	ins, err := c.e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return nil, c.e.wrap(err, "inspecting container %s", short(c.ID))
	}
	st := ins.Container.State
	if st == nil {
		return &image.ContainerState{}, nil
	}
	return &image.ContainerState{Status: string(st.Status), Running: st.Running, ExitCode: st.ExitCode, OOMKilled: st.OOMKilled}, nil
}

// Stop sends SIGTERM and, after timeout, SIGKILL. A container that is
// already stopped or gone is not an error.
func (c *Container) Stop(ctx context.Context, timeout time.Duration) error {
	secs := int(timeout / time.Second)
	_, err := c.e.cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return c.e.wrap(err, "stopping container %s", short(c.ID))
	}
	return nil
}

// Remove removes the container, killing it if it runs. A container already
// gone is not an error.
func (c *Container) Remove(ctx context.Context) error {
	_, err := c.e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return c.e.wrap(err, "removing container %s", short(c.ID))
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
