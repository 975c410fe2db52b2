package aml

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	"github.com/aksml/aksml/webservice"
)

// ImageOptions make a deployment run its replicas from a container image,
// built (or reused) through an image.Cache, as Azure ML builds an image per
// environment. Without them the simulator runs replicas in process.
type ImageOptions struct {
	// Cache finds or builds the image. Required.
	Cache *image.Cache
	// ScoreBinary is a static scoring binary for the image: cmd/aksml-score
	// built with CGO_ENABLED=0 for a score.py, or a Go-native model's
	// binary (a main calling scoring.Main). Required.
	ScoreBinary string
	// BaseImage overrides the environment's base image ("scratch" for a Go
	// model). Empty means the environment's, or image.DefaultBaseImage.
	BaseImage string
	// Progress receives the cache's decisions and the build log, a line
	// per Write, as every Progress of the library does; nil drops them.
	Progress io.Writer
}

// ImageSpec maps an inference config onto an image.Spec: the environment's
// base image or Dockerfile, conda or user-managed Python, variables, the
// entry script and the digest of the packaged source directory. It returns
// the packaged source too, which a build needs.
func ImageSpec(ctx context.Context, ic *InferenceConfig, opts *ImageOptions) (*image.Spec, *image.ContextInputs, error) {
	if opts == nil || opts.Cache == nil || opts.ScoreBinary == "" {
		return nil, nil, errcode.New(errcode.InvalidArgument, "image options: Cache and ScoreBinary are required")
	}
	// In a container the server listens on all of the container's own
	// interfaces; the engine publishes the port on 127.0.0.1 only.
	spec := &image.Spec{BaseImage: opts.BaseImage, ScoreArgs: []string{"--address", "0.0.0.0"}}
	inputs := &image.ContextInputs{ScoreBinary: opts.ScoreBinary}
	bin, err := image.FileDigest(opts.ScoreBinary)
	if err != nil {
		return nil, nil, err
	}
	spec.ScoreBinary = bin
	if env := ic.Environment; env != nil {
		spec.Name, spec.Version = env.Name, fmt.Sprint(env.Version)
		if spec.BaseImage == "" {
			spec.BaseImage = env.Docker.BaseImage
		}
		spec.BaseDockerfile = env.Docker.BaseDockerfile
		spec.UserManaged = env.Python.UserManagedDependencies
		spec.InterpreterPath = env.Python.InterpreterPath
		if c := env.Python.CondaDependencies; c != nil {
			spec.CondaYAML = string(c.YAML())
		}
		spec.EnvironmentVariables = env.EnvironmentVariables
		spec.InferencingStackVersion = env.InferencingStackVersion
	}
	if ic.Handler == nil {
		srcDir := ic.SourceDirectory
		if srcDir == "" {
			srcDir = filepath.Dir(ic.EntryScriptPath())
		}
		// The image holds the source under the directory's own name, as
		// the in-process replicas' app root does.
		abs, err := filepath.Abs(srcDir)
		if err != nil {
			return nil, nil, errcode.Errorf(errcode.InvalidArgument, "source_directory %q: %v", srcDir, err)
		}
		spec.SourceName = filepath.Base(abs)
		src, err := image.PackageSource(ctx, srcDir, nil)
		if err != nil {
			return nil, nil, err
		}
		rel, err := filepath.Rel(srcDir, ic.EntryScriptPath())
		if err != nil {
			return nil, nil, errcode.Wrap(errcode.InvalidArgument, err)
		}
		spec.EntryScript = filepath.ToSlash(rel)
		spec.Source = src.Digest
		inputs.Source = src
	}
	return spec, inputs, nil
}

// withImage builds or reuses the image for rt and records it in the
// template, so backends run containers.
func withImage(ctx context.Context, ic *InferenceConfig, rt webservice.Runtime, opts *ImageOptions) (webservice.Runtime, error) {
	spec, inputs, err := ImageSpec(ctx, ic, opts)
	if err != nil {
		return rt, err
	}
	res, err := opts.Cache.Ensure(ctx, spec, &image.EnsureOptions{Inputs: inputs, Progress: opts.Progress})
	if err != nil {
		return rt, err
	}
	rt.Template.Image = res.Ref
	rt.Template.Digest = string(res.Digest)
	return rt, nil
}
