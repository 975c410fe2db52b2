package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// EngineOptions configures NewEngine. Nil means defaults.
type EngineOptions struct {
	// Host is the engine's address ("unix:///var/run/docker.sock",
	// "tcp://127.0.0.1:2375"). Empty means DOCKER_HOST, else the default
	// socket.
	Host string
	// Logger receives debug lines; nil discards them.
	Logger *slog.Logger
}

// Engine is a Docker engine reached through its HTTP API. It negotiates the
// API version with the daemon (Docker 20.10 speaks 1.41, the oldest this
// client accepts is 1.40). It is safe for concurrent use.
type Engine struct {
	cli *client.Client
	log *slog.Logger
}

// NewEngine connects to the engine and checks that it answers. With no
// engine at the address it returns an errcode.Unavailable error that says
// so; close the Engine when done.
func NewEngine(ctx context.Context, opts *EngineOptions) (*Engine, error) {
	if opts == nil {
		opts = &EngineOptions{}
	}
	copts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		copts = append(copts, client.WithHost(opts.Host))
	}
	cli, err := client.New(copts...)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "docker engine address %q: %w", opts.Host, err)
	}
	e := &Engine{cli: cli, log: opts.Logger}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, e.wrap(err, "docker engine at %s does not answer (image builds and container replicas need a running Docker engine; set DOCKER_HOST)", cli.DaemonHost())
	}
	e.log.Debug("docker engine connected", "host", cli.DaemonHost(), "api", cli.ClientVersion())
	return e, nil
}

// Close releases the engine's connections.
func (e *Engine) Close() error { return e.cli.Close() }

// Host returns the engine's address.
func (e *Engine) Host() string { return e.cli.DaemonHost() }

// APIVersion returns the API version negotiated with the engine.
func (e *Engine) APIVersion() string { return e.cli.ClientVersion() }

// As gives access to the underlying client: target must be a
// **client.Client (github.com/moby/moby/client). It reports whether it did.
func (e *Engine) As(target any) bool {
	if p, ok := target.(**client.Client); ok {
		*p = e.cli
		return true
	}
	return false
}

// Build builds an image from buildContext with the engine's classic builder,
// streaming the log to opts.Log. A failure of the Dockerfile is a
// *BuildError naming the failing step with the last log lines.
func (e *Engine) Build(ctx context.Context, buildContext io.Reader, opts *image.BuildOptions) (*image.BuildResult, error) {
	if opts == nil {
		opts = &image.BuildOptions{}
	}
	if !opts.AllowPull {
		data, err := io.ReadAll(buildContext)
		if err != nil {
			return nil, errcode.Errorf(errcode.Internal, "reading the build context: %w", err)
		}
		if err := e.checkBaseImages(ctx, data); err != nil {
			return nil, err
		}
		buildContext = bytes.NewReader(data)
	}
	res, err := e.cli.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags:        opts.Tags,
		Labels:      opts.Labels,
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		NoCache:     opts.NoCache,
		Version:     build.BuilderV1,
	})
	if err != nil {
		if cerrdefs.IsInvalidArgument(err) {
			// The daemon refused the Dockerfile before running a step.
			return nil, &image.BuildError{Message: daemonMessage(err), Code: errcode.InvalidArgument}
		}
		return nil, e.wrap(err, "building image")
	}
	defer res.Body.Close()
	var intermediate []string
	logf := func(line string) {
		if m := stepImageLine.FindStringSubmatch(line); m != nil {
			intermediate = append(intermediate, m[1])
		}
		if opts.Log != nil {
			opts.Log(line)
		}
	}
	id, err := parseBuildLog(res.Body, logf, opts.TailLines)
	if err != nil {
		if !opts.KeepIntermediate {
			e.removeIntermediate(ctx, intermediate)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, image.ContextError(ctxErr)
		}
		return nil, err
	}
	e.log.Debug("image built", "id", id, "tags", opts.Tags)
	return &image.BuildResult{ImageID: id}, nil
}

// stepImageLine is the classic builder's line for a step's resulting image.
var stepImageLine = regexp.MustCompile(`^ ---> ([0-9a-f]{12,64})$`)

// removeIntermediate removes the untagged images of a failed build's steps,
// newest first. Images still used (a cached layer under another image) are
// left alone: the engine refuses to remove them without force.
func (e *Engine) removeIntermediate(ctx context.Context, ids []string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for i := len(ids) - 1; i >= 0; i-- {
		if _, err := e.cli.ImageRemove(rctx, ids[i], client.ImageRemoveOptions{PruneChildren: true}); err != nil {
			e.log.Debug("intermediate image kept", "id", ids[i], "err", err)
		}
	}
}

// checkBaseImages fails if a FROM line of the context's Dockerfile names an
// image the engine does not have.
func (e *Engine) checkBaseImages(ctx context.Context, buildContext []byte) error {
	tr := tar.NewReader(bytes.NewReader(buildContext))
	for {
		h, err := tr.Next()
		if err != nil {
			return nil // no Dockerfile: the engine will say so
		}
		if path.Clean(h.Name) != "Dockerfile" {
			continue
		}
		df, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return nil
		}
		for _, b := range image.BaseImages(string(df)) {
			if b == "scratch" {
				continue
			}
			ok, err := e.HasImage(ctx, b)
			if err != nil {
				return err
			}
			if !ok {
				return errcode.Errorf(errcode.FailedPrecondition, "baseImage %s is not in the local engine's image store and pulling is off (BuildOptions.AllowPull); load or build it first", b)
			}
		}
		return nil
	}
}

// imageInfo is what the cache needs to know about a local image.
type imageInfo struct {
	ID     string
	Labels map[string]string
}

// inspectImage returns the image's ID and labels, or an errcode.NotFound
// error.
func (e *Engine) inspectImage(ctx context.Context, ref string) (*imageInfo, error) {
	res, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return nil, e.wrap(err, "inspecting image %s", ref)
	}
	info := &imageInfo{ID: res.ID}
	if res.Config != nil {
		info.Labels = res.Config.Labels
	}
	return info, nil
}

// HasImage reports whether the engine's image store holds ref.
func (e *Engine) HasImage(ctx context.Context, ref string) (bool, error) {
	_, err := e.inspectImage(ctx, ref)
	if errors.Is(err, errcode.NotFound) {
		return false, nil
	}
	return err == nil, err
}

// TagImage gives the image source (ID or reference) the reference target.
func (e *Engine) TagImage(ctx context.Context, source, target string) error {
	if _, err := e.cli.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target}); err != nil {
		return e.wrap(err, "tagging %s as %s", source, target)
	}
	return nil
}

// RemoveImage removes an image reference (and the image with its untagged
// parents once no reference is left). A missing image is not an error.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return e.wrap(err, "removing image %s", ref)
	}
	return nil
}

// wrap gives an engine error its code and a message naming the engine.
func (e *Engine) wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return image.ContextError(err)
	case client.IsErrConnectionFailed(err):
		return errcode.Errorf(errcode.Unavailable, "%s: docker engine at %s is not reachable: %w", what, e.cli.DaemonHost(), err)
	case cerrdefs.IsNotFound(err):
		return errcode.Errorf(errcode.NotFound, "%s: %s", what, daemonMessage(err))
	case cerrdefs.IsInvalidArgument(err):
		return errcode.Errorf(errcode.InvalidArgument, "%s: %s", what, daemonMessage(err))
	case cerrdefs.IsConflict(err):
		return errcode.Errorf(errcode.Conflict, "%s: %s", what, daemonMessage(err))
	case cerrdefs.IsUnavailable(err):
		return errcode.Errorf(errcode.Unavailable, "%s: %s", what, daemonMessage(err))
	case cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err):
		return errcode.Errorf(errcode.Unauthenticated, "%s: %s", what, daemonMessage(err))
	case cerrdefs.IsNotImplemented(err):
		return errcode.Errorf(errcode.Unimplemented, "%s: %s", what, daemonMessage(err))
	default:
		return errcode.Errorf(errcode.Internal, "%s: %w", what, err)
	}
}

// daemonMessage strips the client's "Error response from daemon: " prefix.
func daemonMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "Error response from daemon: ")
}
