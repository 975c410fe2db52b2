package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/opencontainers/go-digest"
	"k8s.io/utils/clock"
)

// LabelDigest is the image label that records the Spec digest an image was
// built for.
const LabelDigest = "io.aksml.digest"

// Store records built images by digest: a workspace's registry or the global
// one. Implementations: EngineStore (the local engine's image store) and
// RegistryStore (a registry reached through the engine).
type Store interface {
	// Lookup returns the reference of the image recorded for d, or an
	// errcode.NotFound error when there is none. Errors reaching the store
	// are errcode.Unavailable.
	Lookup(ctx context.Context, d digest.Digest) (ref string, err error)
	// Record records the local image (an ID or reference the engine knows)
	// for d and returns the reference it is recorded under.
	Record(ctx context.Context, d digest.Digest, image string) (ref string, err error)
	// String names the store in logs and messages.
	String() string
}

// CacheOptions configures a Cache.
type CacheOptions struct {
	// Workspace is asked first and records every build. Required.
	Workspace Store
	// Global is asked after the workspace; nil means none. A hit there is
	// used as it is, as Azure ML uses its global registry's images. An
	// unreachable global store counts as a miss.
	Global Store
	// Builder builds on a miss (an *Engine). Required.
	Builder Builder
	// AllowPull is passed to every build (BuildOptions.AllowPull).
	AllowPull bool
	// Clock measures durations; nil means the real clock.
	Clock clock.PassiveClock
	// Logger receives debug lines; nil discards them.
	Logger *slog.Logger
}

// Cache finds or builds the image for a Spec: it looks the digest up in the
// workspace store, then in the global one; only a miss in both builds, and
// the build is recorded in the workspace. Concurrent requests for one digest
// share a single build. It is safe for concurrent use.
type Cache struct {
	opts CacheOptions
	log  *slog.Logger

	mu       sync.Mutex
	inflight map[digest.Digest]*flight

	builds, workspaceHits, globalHits atomic.Int64
}

type flight struct {
	done chan struct{}
	res  *Result
	err  error
}

// NewCache returns a Cache. It panics if Workspace or Builder is nil (a
// programming error).
func NewCache(opts CacheOptions) *Cache {
	if opts.Workspace == nil || opts.Builder == nil {
		panic("image.NewCache: CacheOptions.Workspace and CacheOptions.Builder are required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	c := &Cache{opts: opts, log: opts.Logger, inflight: map[digest.Digest]*flight{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Where an image came from.
const (
	FromWorkspace = "workspace"
	FromGlobal    = "global"
	FromBuild     = "build"
)

// Result is the image for a Spec.
type Result struct {
	// Digest is the Spec's digest.
	Digest digest.Digest
	// Ref is the reference to run (aksml/env:<hex> after a build or a
	// workspace hit; the global store's reference after a global hit).
	Ref string
	// From is FromWorkspace, FromGlobal or FromBuild.
	From string
	// Built reports whether this call built the image.
	Built bool
	// Duration is the time the call took, lookups and build included.
	Duration time.Duration
}

// CacheStats counts what a Cache did.
type CacheStats struct {
	Builds, WorkspaceHits, GlobalHits int64
}

// Stats returns the counts so far.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Builds: c.builds.Load(), WorkspaceHits: c.workspaceHits.Load(), GlobalHits: c.globalHits.Load()}
}

// EnsureOptions tunes Ensure. Nil means defaults.
type EnsureOptions struct {
	// Inputs are the files the build context needs (only read on a miss,
	// but checked against the Spec's digests then).
	Inputs *ContextInputs
	// Progress receives the cache's decisions and the build log, one
	// line (ending in a newline) per Write; nil drops them. It is the
	// same hook, in the same shape, as compute.CreateOptions.Progress and
	// webservice.DeployOptions.Progress.
	Progress io.Writer
}

// Ensure returns the image for spec, building it only if neither store has
// it. A failed build is a *BuildError; an invalid Spec errcode.InvalidArgument;
// no engine errcode.Unavailable.
func (c *Cache) Ensure(ctx context.Context, spec *Spec, opts *EnsureOptions) (*Result, error) {
	if opts == nil {
		opts = &EnsureOptions{}
	}
	progress := func(string) {}
	if w := opts.Progress; w != nil {
		progress = func(line string) { _, _ = io.WriteString(w, strings.TrimRight(line, "\n")+"\n") }
	}
	start := c.opts.Clock.Now()
	d, err := spec.Digest()
	if err != nil {
		return nil, err
	}
	for {
		c.mu.Lock()
		f, busy := c.inflight[d]
		if !busy {
			f = &flight{done: make(chan struct{})}
			c.inflight[d] = f
			c.mu.Unlock()
			f.res, f.err = c.ensure(ctx, spec, d, opts.Inputs, progress, start)
			c.mu.Lock()
			delete(c.inflight, d)
			c.mu.Unlock()
			close(f.done)
			return f.res, f.err
		}
		c.mu.Unlock()
		progress(fmt.Sprintf("image %s: waiting for a build of the same environment in progress", d))
		select {
		case <-ctx.Done():
			return nil, ctxError(ctx.Err())
		case <-f.done:
		}
		if f.err == nil {
			r := *f.res
			r.Built = false
			r.Duration = c.opts.Clock.Since(start)
			return &r, nil
		}
		// The other call failed (perhaps its context ended): try ourselves.
		if errors.Is(f.err, ErrEnvironmentBuildFailed) {
			return nil, f.err
		}
	}
}

func (c *Cache) ensure(ctx context.Context, spec *Spec, d digest.Digest, inputs *ContextInputs, progress func(string), start time.Time) (*Result, error) {
	res := &Result{Digest: d}
	finish := func(ref, from string) (*Result, error) {
		res.Ref, res.From, res.Built = ref, from, from == FromBuild
		res.Duration = c.opts.Clock.Since(start)
		c.log.Debug("image ready", "digest", d, "ref", ref, "from", from, "duration", res.Duration)
		return res, nil
	}
	ref, err := c.opts.Workspace.Lookup(ctx, d)
	switch {
	case err == nil:
		c.workspaceHits.Add(1)
		progress(fmt.Sprintf("image %s found in the workspace (%s): nothing to build", ref, c.opts.Workspace))
		return finish(ref, FromWorkspace)
	case !errors.Is(err, errcode.NotFound):
		return nil, err
	}
	if c.opts.Global != nil {
		ref, err := c.opts.Global.Lookup(ctx, d)
		switch {
		case err == nil:
			c.globalHits.Add(1)
			progress(fmt.Sprintf("image %s found in the global store (%s): nothing to build", ref, c.opts.Global))
			return finish(ref, FromGlobal)
		case errors.Is(err, errcode.NotFound):
		case ctx.Err() != nil:
			return nil, ctxError(ctx.Err())
		default:
			progress(fmt.Sprintf("global image store unavailable, building instead: %v", err))
			c.log.Warn("global image store unavailable", "store", c.opts.Global.String(), "err", err)
		}
	}
	progress(fmt.Sprintf("image for %s not found: building %s", d, RefFor(Repository, d)))
	bc, err := BuildContext(ctx, spec, inputs)
	if err != nil {
		return nil, err
	}
	c.builds.Add(1)
	built, err := c.opts.Builder.Build(ctx, bytes.NewReader(bc.Tar), &BuildOptions{
		Labels:    map[string]string{LabelDigest: d.String()},
		Log:       progress,
		AllowPull: c.opts.AllowPull,
	})
	if err != nil {
		return nil, err
	}
	ref, err = c.opts.Workspace.Record(ctx, d, built.ImageID)
	if err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("image %s built and recorded in the workspace (%s)", ref, c.opts.Workspace))
	return finish(ref, FromBuild)
}

// BaseImages returns the images a Dockerfile's FROM lines name, leaving out
// earlier stages, scratch and references built from ARG variables.
func BaseImages(dockerfile string) []string {
	dockerfile = normaliseText(dockerfile)
	var out []string
	stages := map[string]bool{}
	for _, l := range strings.Split(dockerfile, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		args := f[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		if len(args) == 0 {
			continue
		}
		img := args[0]
		if !stages[strings.ToLower(img)] && !strings.Contains(img, "$") {
			if norm, err := normaliseImageRef(img); err == nil {
				out = append(out, norm)
			}
		}
		if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
			stages[strings.ToLower(args[2])] = true
		}
	}
	return out
}

// EnsureOperation is an Ensure in progress.
type EnsureOperation struct {
	done chan struct{}
	res  *Result
	err  error
}

// BeginEnsure starts Ensure in the background and returns at once; ctx
// bounds the whole operation.
func (c *Cache) BeginEnsure(ctx context.Context, spec *Spec, opts *EnsureOptions) *EnsureOperation {
	op := &EnsureOperation{done: make(chan struct{})}
	go func() {
		defer close(op.done)
		op.res, op.err = c.Ensure(ctx, spec, opts)
	}()
	return op
}

// Done reports whether the operation has finished.
func (o *EnsureOperation) Done() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

// Wait waits for the operation to finish, or for ctx to end (which does not
// stop the operation).
func (o *EnsureOperation) Wait(ctx context.Context) (*Result, error) {
	select {
	case <-o.done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, ctxError(ctx.Err())
	}
}
