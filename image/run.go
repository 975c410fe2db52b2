package image

import (
	"context"
	"io"
	"time"
)

// BuildOptions tunes a build. Nil means defaults.
type BuildOptions struct {
	// Tags are given to the built image.
	Tags []string
	// Labels are set on the built image.
	Labels map[string]string
	// Log receives each line of the build log as it arrives (for progress
	// and deployment logs); nil drops them.
	Log func(line string)
	// TailLines is how many of the last log lines a BuildError keeps;
	// 0 means 20.
	TailLines int
	// NoCache disables the engine's layer cache.
	NoCache bool
	// AllowPull lets the engine pull base images it lacks. When false (the
	// default), Build reads the Dockerfile's FROM lines first and fails at
	// once with errcode.FailedPrecondition if a base image is not in the
	// local image store, instead of reaching out to a registry.
	AllowPull bool
	// KeepIntermediate keeps the images of the steps that succeeded when a
	// build fails (a layer cache for the next attempt). By default they are
	// removed, so that a failed build leaves nothing behind.
	KeepIntermediate bool
}

// BuildResult describes a built image.
type BuildResult struct {
	// ImageID is the engine's image ID ("sha256:…").
	ImageID string
}

// Builder builds an image from a build context archive. Engine is the
// implementation; tests and other backends may provide theirs.
type Builder interface {
	// Build builds the context (a tar with a Dockerfile at its root). A
	// failing step is a *BuildError (errors.Is ErrEnvironmentBuildFailed); no
	// engine is errcode.Unavailable.
	Build(ctx context.Context, buildContext io.Reader, opts *BuildOptions) (*BuildResult, error)
}

// LabelManaged is set on every container RunContainer starts, so that
// leftovers can be found ("docker ps -a --filter label=io.aksml.managed").
const LabelManaged = "io.aksml.managed"

// Mount binds a host directory into a container (a model directory, a
// source directory).
type Mount struct {
	// Source is the absolute host path.
	Source string
	// Target is the absolute path in the container (ModelsRoot, AppRoot).
	Target string
	// ReadOnly mounts it read-only.
	ReadOnly bool
}

// RunOptions tunes RunContainer. Nil means defaults.
type RunOptions struct {
	// Name is the container's name; empty lets the engine pick one.
	Name string
	// Env adds environment variables to the image's.
	Env map[string]string
	// Cmd replaces the image's CMD (the scoring binary's arguments).
	Cmd []string
	// Port is the container port to publish; 0 means ScoringPort.
	Port int
	// HostPort is the port on 127.0.0.1; 0 picks a free one.
	HostPort int
	// Mounts are bind mounts.
	Mounts []Mount
	// Labels are set on the container (besides LabelManaged).
	Labels map[string]string
	// CPUs limits the container's CPU (1.5 = one and a half cores); 0 means
	// no limit.
	CPUs float64
	// MemoryBytes limits the container's memory; 0 means no limit.
	MemoryBytes int64
}

// LogOptions tunes Container.Logs. Nil means defaults.
type LogOptions struct {
	// Follow keeps the reader open for new output until the container stops
	// or the reader is closed.
	Follow bool
	// Tail limits the output to the last lines; 0 means all.
	Tail int
}

// ContainerState is what the engine reports about a container.
type ContainerState struct {
	// Status is "created", "running", "exited", …
	Status string
	// Running reports whether the process runs.
	Running bool
	// ExitCode is the last exit code (when not running).
	ExitCode int
	// OOMKilled reports a kill for exceeding the memory limit.
	OOMKilled bool
}

// Distributor makes a locally built image available to a deployment target:
// a push to the registry an AKS cluster pulls from (RegistryPusher), or a
// load into the nodes of a kind cluster (kube/kind's Cluster).
type Distributor interface {
	// Distribute makes the local image ref available and returns the
	// reference the target's nodes should run. An unreachable registry is
	// errcode.Unavailable; a distribution this build cannot do is
	// errcode.Unimplemented.
	Distribute(ctx context.Context, ref string) (string, error)
}

// ContainerRunner starts containers from images: the building block for
// replicas that run as containers (simulator.Options.Engine). Package
// image/docker's Engine implements it over the Docker Engine API; keeping
// the interface here lets light programs name it without linking a Docker
// client.
type ContainerRunner interface {
	// RunContainer creates and starts a container from ref with its port
	// published on 127.0.0.1 and returns it once started (not yet ready:
	// probe its URL). Errors: errcode.NotFound for an unknown image,
	// errcode.InvalidArgument for bad options, errcode.Unavailable without
	// an engine.
	RunContainer(ctx context.Context, ref string, opts *RunOptions) (RunningContainer, error)
}

// RunningContainer is a container a ContainerRunner started.
type RunningContainer interface {
	// URL is the published port's base URL, "http://127.0.0.1:PORT".
	URL() string
	// State reports whether the container runs and how it ended.
	State(ctx context.Context) (*ContainerState, error)
	// Logs returns its stdout and stderr, interleaved; close it when done.
	Logs(ctx context.Context, opts *LogOptions) (io.ReadCloser, error)
	// Stop sends SIGTERM and, after timeout, SIGKILL; a container already
	// stopped or gone is not an error.
	Stop(ctx context.Context, timeout time.Duration) error
	// Remove removes it, killing it if it runs; gone is not an error.
	Remove(ctx context.Context) error
}

// ContextError gives a context error its code: DeadlineExceeded for a
// deadline, Unavailable for a cancellation.
func ContextError(err error) error { return ctxError(err) }
