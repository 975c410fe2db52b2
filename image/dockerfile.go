package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/opencontainers/go-digest"
)

// The layout of a scoring image, as in Azure ML's images.
const (
	// AppRoot holds the source directory and the models (AML_APP_ROOT).
	AppRoot = "/var/azureml-app"
	// ModelsRoot is where models are baked, mounted or downloaded
	// (azureml-models/NAME/VERSION below it).
	ModelsRoot = AppRoot + "/azureml-models"
	// ScoreBinaryPath is where the aksml-score binary is copied.
	ScoreBinaryPath = "/usr/local/bin/aksml-score"
	// CondaPrefix is where the conda environment is created.
	CondaPrefix = "/azureml-envs/aksml"
	// SetupDir holds the environment's setup files (conda.yaml).
	SetupDir = "/azureml-environment-setup"
	// ScoringPort is the port the scoring server listens on, as the Azure
	// inference server does.
	ScoringPort = 5001
)

// Environment variables the image sets for the scoring server, besides the
// Spec's own. AKSML_PYTHON names the interpreter for score.py hosts; it is
// set only when the image has a Python environment.
const (
	EnvAppRoot        = "AML_APP_ROOT"
	EnvSourceDir      = "AZUREML_SOURCE_DIRECTORY"
	EnvEntryScript    = "AZUREML_ENTRY_SCRIPT"
	EnvModelDir       = "AZUREML_MODEL_DIR"
	EnvPython         = "AKSML_PYTHON"
	EnvInferenceStack = "AZUREML_INFERENCING_STACK_VERSION"
)

// Paths inside the build context.
const (
	ctxDockerfile = "Dockerfile"
	ctxConda      = "aksml/conda.yaml"
	ctxScore      = "aksml/aksml-score"
	ctxSource     = "source"
	ctxModels     = "models"
)

// ModelDir returns AZUREML_MODEL_DIR for a deployment's models inside the
// container: ModelsRoot/NAME/VERSION for one model, ModelsRoot for several.
func ModelDir(models []Model) string {
	if len(models) == 1 {
		return fmt.Sprintf("%s/%s/%d", ModelsRoot, models[0].Name, models[0].Version)
	}
	return ModelsRoot
}

// Interpreter returns the Python interpreter the image's environment uses,
// or "" when it has none (a Go handler on a bare base).
func (s *Spec) Interpreter() string {
	switch {
	case strings.TrimSpace(s.CondaYAML) != "" && !s.UserManaged:
		return CondaPrefix + "/bin/python"
	case s.InterpreterPath != "":
		return path.Clean(strings.TrimSpace(s.InterpreterPath))
	case s.UserManaged || len(s.PipPackages) > 0:
		return "python3"
	}
	return ""
}

// Dockerfile returns the Dockerfile that builds the scoring image for s:
// the base (FROM or the base Dockerfile), the extra Docker steps, the conda
// environment from the YAML (unless user-managed), the pip packages, the
// environment variables, the aksml-score binary, the source directory (in
// the app root under its own name) and, only with BakeModels, the models.
// It expects the build context that BuildContext writes.
func (s *Spec) Dockerfile() (string, error) {
	c, err := s.canonical()
	if err != nil {
		return "", err
	}
	b, err := marshalCanonical(c)
	if err != nil {
		return "", err
	}
	return dockerfile(s, c, digest.SHA256.FromBytes(b)), nil
}

func dockerfile(s *Spec, c *canonicalSpec, d digest.Digest) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if c.BaseDockerfile != "" {
		b.WriteString(c.BaseDockerfile)
		b.WriteString("\n")
	} else {
		line("FROM %s", c.BaseImage)
	}
	line("# aksml scoring image %s; generated, do not edit", d)
	if c.DockerSteps != "" {
		b.WriteString(c.DockerSteps)
		b.WriteString("\n")
	}
	python := s.Interpreter()
	if c.Conda != nil && !c.UserManaged {
		line("COPY %s %s/conda.yaml", ctxConda, SetupDir)
		line("RUN conda env create -p %s -f %s/conda.yaml && conda clean -aqy", CondaPrefix, SetupDir)
		line("ENV PATH=%s/bin:$PATH", CondaPrefix)
	}
	if len(c.PipPackages) > 0 {
		argv := append([]string{python, "-m", "pip", "install", "--no-cache-dir"}, c.PipPackages...)
		line("RUN %s", jsonArray(argv))
	}
	env := [][2]string{}
	for _, k := range sortedKeys(c.EnvironmentVariables) {
		env = append(env, [2]string{k, c.EnvironmentVariables[k]})
	}
	// aksml's own variables come last so that they win.
	// A baked source lies in the app root under its own name; the entry
	// script is named from the app root, the working directory, as Azure
	// ML's images name it.
	sourceDir, entry := AppRoot, c.EntryScript
	if c.Source != "" {
		sourceDir = AppRoot + "/" + c.SourceName
		if entry != "" {
			entry = c.SourceName + "/" + entry
		}
	}
	env = append(env, [2]string{EnvAppRoot, AppRoot}, [2]string{EnvSourceDir, sourceDir})
	if entry != "" {
		env = append(env, [2]string{EnvEntryScript, entry})
	}
	if python != "" {
		env = append(env, [2]string{EnvPython, python})
	}
	if c.InferencingStackVersion != "" {
		env = append(env, [2]string{EnvInferenceStack, c.InferencingStackVersion})
	}
	if len(c.Models) > 0 {
		models := make([]Model, len(c.Models))
		for i, m := range c.Models {
			models[i] = Model{Name: m.Name, Version: m.Version}
		}
		env = append(env, [2]string{EnvModelDir, ModelDir(models)})
	}
	// The classic builder commits an image per instruction, so the binary
	// and all variables take one instruction each.
	if c.ScoreBinary != "" {
		line("COPY %s %s", ctxScore, ScoreBinaryPath)
	}
	for i, kv := range env {
		prefix, cont := "    ", " \\"
		if i == 0 {
			prefix = "ENV "
		}
		if i == len(env)-1 {
			cont = ""
		}
		line("%s%s=%s%s", prefix, kv[0], quoteEnv(kv[1]), cont)
	}
	if c.Source != "" {
		line("COPY %s", jsonArray([]string{ctxSource + "/", sourceDir + "/"}))
	}
	if len(c.Models) > 0 {
		line("COPY %s/ %s/", ctxModels, ModelsRoot)
	}
	line("WORKDIR %s", AppRoot)
	line("EXPOSE %d", ScoringPort)
	if c.ScoreBinary != "" {
		line("ENTRYPOINT %s", jsonArray([]string{ScoreBinaryPath}))
		if len(c.ScoreArgs) > 0 {
			line("CMD %s", jsonArray(c.ScoreArgs))
		}
	}
	return b.String()
}

// quoteEnv quotes a value for an ENV instruction: double quotes, with
// backslash, quote and dollar escaped so that nothing is expanded.
func quoteEnv(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(v) + `"`
}

func jsonArray(argv []string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(argv) // []string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

// ContextInputs are the files a build context needs beyond the Spec. Each
// must match the digest the Spec records.
type ContextInputs struct {
	// Source is the packaged source directory; required when Spec.Source is
	// set, and its digest must equal it.
	Source *Source
	// ScoreBinary is the path of the aksml-score binary (a static build);
	// required when Spec.ScoreBinary is set, and its content must match.
	ScoreBinary string
	// Models holds the packaged files of each baked model, keyed
	// "name:version"; used only with Spec.BakeModels.
	Models map[string]*Source
}

// Context is a build context ready for the engine.
type Context struct {
	// Digest is the Spec's digest; Ref the tag it gets (aksml/env:<hex>).
	Digest digest.Digest
	Ref    string
	// Dockerfile is the generated Dockerfile (also in the archive).
	Dockerfile string
	// Tar is the build context archive: Dockerfile, aksml/conda.yaml,
	// aksml/aksml-score, source/… and models/…, all with fixed times and
	// owners.
	Tar []byte
}

// BuildContext validates s, checks the inputs against the digests s records
// and writes the build context. Errors: errcode.InvalidArgument for a bad
// Spec or a missing input, errcode.FailedPrecondition when an input's
// content no longer matches its digest (a file changed after the Spec was
// made), errcode.NotFound for a missing binary.
func BuildContext(ctx context.Context, s *Spec, in *ContextInputs) (*Context, error) {
	if in == nil {
		in = &ContextInputs{}
	}
	c, err := s.canonical()
	if err != nil {
		return nil, err
	}
	cb, err := marshalCanonical(c)
	if err != nil {
		return nil, err
	}
	d := digest.SHA256.FromBytes(cb)
	var errs []error
	if c.Source != "" {
		switch {
		case in.Source == nil:
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "source %s is in the spec but no packaged source was given", c.Source))
		case in.Source.Digest != s.Source:
			errs = append(errs, errcode.Errorf(errcode.FailedPrecondition, "source directory changed: packaged %s, spec has %s", in.Source.Digest, s.Source))
		case c.EntryScript != "" && !in.Source.Has(c.EntryScript):
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "entryScript %q is not in the source directory (or is excluded by .amlignore/.gitignore)", c.EntryScript))
		}
	}
	if c.ScoreBinary != "" {
		if in.ScoreBinary == "" {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "scoreBinary %s is in the spec but no binary path was given", c.ScoreBinary))
		} else if got, err := FileDigest(in.ScoreBinary); err != nil {
			errs = append(errs, err)
		} else if got != s.ScoreBinary {
			errs = append(errs, errcode.Errorf(errcode.FailedPrecondition, "scoring binary %q changed: it is %s, spec has %s", in.ScoreBinary, got, s.ScoreBinary))
		}
	}
	for _, m := range c.Models {
		id := fmt.Sprintf("%s:%d", m.Name, m.Version)
		src := in.Models[id]
		switch {
		case src == nil:
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "model %s is baked but its files were not given", id))
		case string(src.Digest) != m.Digest:
			errs = append(errs, errcode.Errorf(errcode.FailedPrecondition, "model %s changed: packaged %s, spec has %s", id, src.Digest, m.Digest))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	df := dockerfile(s, c, d)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(ctxDockerfile, 0o644, []byte(df)); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "writing build context: %w", err)
	}
	if c.Conda != nil && !c.UserManaged {
		y, err := condaFile(c.Conda)
		if err != nil {
			return nil, err
		}
		if err := add(ctxConda, 0o644, y); err != nil {
			return nil, errcode.Errorf(errcode.Internal, "writing build context: %w", err)
		}
	}
	if c.ScoreBinary != "" {
		if err := ctx.Err(); err != nil {
			return nil, ctxError(err)
		}
		bin, err := os.ReadFile(in.ScoreBinary)
		if err != nil {
			return nil, fsError(err, "scoring binary %q", in.ScoreBinary)
		}
		if digest.SHA256.FromBytes(bin) != s.ScoreBinary {
			return nil, errcode.Errorf(errcode.FailedPrecondition, "scoring binary %q changed while the context was written", in.ScoreBinary)
		}
		if err := add(ctxScore, 0o755, bin); err != nil {
			return nil, errcode.Errorf(errcode.Internal, "writing build context: %w", err)
		}
	}
	if c.Source != "" {
		if err := retar(tw, in.Source.Tar(), ctxSource); err != nil {
			return nil, err
		}
	}
	for _, m := range c.Models {
		if err := retar(tw, in.Models[fmt.Sprintf("%s:%d", m.Name, m.Version)].Tar(), fmt.Sprintf("%s/%s/%d", ctxModels, m.Name, m.Version)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "writing build context: %w", err)
	}
	return &Context{Digest: d, Ref: RefFor(Repository, d), Dockerfile: df, Tar: buf.Bytes()}, nil
}

// retar copies the entries of a packaged archive under prefix.
func retar(tw *tar.Writer, archive []byte, prefix string) error {
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errcode.Errorf(errcode.Internal, "reading packaged files for %s: %w", prefix, err)
		}
		h := *hdr
		h.Name = prefix + "/" + strings.TrimPrefix(hdr.Name, "./")
		h.PAXRecords, h.Format = nil, tar.FormatUnknown
		if err := tw.WriteHeader(&h); err != nil {
			return errcode.Errorf(errcode.Internal, "writing build context: %w", err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return errcode.Errorf(errcode.Internal, "writing build context: %w", err)
		}
	}
}
