package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// DefaultBaseImage is the base image used when a Spec names neither a base
// image nor a base Dockerfile, as Azure ML falls back to its own CPU image.
// An empty BaseImage and this value give the same digest.
const DefaultBaseImage = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"

// Repository is the repository under which built scoring images are tagged:
// an image for digest sha256:abc… is aksml/env:abc….
const Repository = "aksml/env"

// canonicalVersion is written into every canonical form; bumping it changes
// every digest, which is what a change of canonicalisation rules must do.
const canonicalVersion = 1

// Spec describes the content of one scoring image: the environment (base
// image or Dockerfile, extra Docker steps, Python dependencies, environment
// variables) and the application baked on top of it (entry script, packaged
// source directory, scoring binary and, when asked, the models).
//
// Its fields are plain values so that any caller (the aml package, the CLI)
// can fill it. Spec.Digest covers a canonical form of every field that
// changes the built image; Name and Version do not, so that two environments
// with the same content share one image, as in Azure ML.
type Spec struct {
	// Name and Version identify the environment for people. They are not
	// part of the digest.
	Name    string
	Version string

	// BaseImage is the image to build on ("docker.io/library/ubuntu:22.04",
	// "scratch"). It is normalised (docker.io/library/, :latest) before
	// hashing. Exclusive with BaseDockerfile; both empty means
	// DefaultBaseImage.
	BaseImage string
	// BaseDockerfile is the text of a Dockerfile to start from (Azure's
	// docker.baseDockerfile); it must contain a FROM instruction.
	BaseDockerfile string
	// DockerSteps are extra Dockerfile instructions placed after the base
	// (Azure's extra_docker_file_steps).
	DockerSteps string

	// CondaYAML is the conda environment file (Azure's
	// python.condaDependencies). The environment is created in the image
	// unless UserManaged is set. Its name: and prefix: keys and the order of
	// its dependencies do not change the digest; the order of its channels
	// does.
	CondaYAML string
	// UserManaged means the base image already has the Python environment
	// (Azure's python.userManagedDependencies); CondaYAML must then be empty.
	UserManaged bool
	// InterpreterPath is the Python interpreter to use with UserManaged
	// (Azure's python.interpreterPath); it must be absolute. Empty means
	// "python3" on the image's PATH.
	InterpreterPath string
	// PipPackages are installed with pip into the environment's interpreter.
	// Their order does not change the digest.
	PipPackages []string
	// EnvironmentVariables are set in the image (Azure's
	// environmentVariables).
	EnvironmentVariables map[string]string
	// InferencingStackVersion is "" or "latest" (Azure's
	// inferencing_stack_version, set for custom images).
	InferencingStackVersion string

	// EntryScript is the entry script's path relative to the source directory
	// ("score.py", "src/score.py"), with forward slashes.
	EntryScript string
	// Source is the digest of the packaged source directory
	// (PackageSource(...).Digest); empty when no source is baked in.
	Source digest.Digest
	// SourceName is the source directory's own name (the last element of
	// its path); required with Source. The image holds the source at
	// AppRoot/SourceName, as Azure ML's images do, and the app root is the
	// working directory, so a script that opens ./SourceName/file finds it.
	// Letters, digits, space and ._-+@=, only; not "azureml-models", which
	// holds the models.
	SourceName string
	// ScoreBinary is the digest of the aksml-score binary copied into the
	// image (FileDigest); empty when the base already provides one.
	ScoreBinary digest.Digest
	// ScoreArgs are the arguments given to the scoring binary (the image's
	// CMD); empty means none.
	ScoreArgs []string
	// BakeModels copies the models into the image instead of mounting or
	// downloading them when the container starts. Models counts only then.
	BakeModels bool
	// Models are the deployment's models, each with the digest of its files.
	Models []Model
}

// Model is one registered model as the image sees it.
type Model struct {
	// Name and Version are the registry name and version (Model.id is
	// name:version); the files land in azureml-models/NAME/VERSION.
	Name    string
	Version int
	// Digest is the digest of the model's packaged files
	// (PackageSource(dir).Digest).
	Digest digest.Digest
}

var (
	envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	modelName  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$`)
	// escapeDirective matches a "# escape=" parser directive at the top of a
	// Dockerfile that picks another escape character than backslash.
	escapeDirective = regexp.MustCompile(`(?i)^(#[^\n]*\n)*#[ \t]*escape[ \t]*=[ \t]*[^\\\s]`)
)

// Validate reports every broken rule of s at once (errors.Join), each an
// errcode.InvalidArgument naming the field by its Azure JSON name.
func (s *Spec) Validate() error {
	_, err := s.canonical()
	return err
}

// canonicalSpec is the hashed form. Field order is fixed by the struct, map
// keys are sorted by encoding/json, lists are sorted where order is not
// meaningful.
type canonicalSpec struct {
	V                       int               `json:"v"`
	BaseImage               string            `json:"baseImage,omitempty"`
	BaseDockerfile          string            `json:"baseDockerfile,omitempty"`
	DockerSteps             string            `json:"dockerSteps,omitempty"`
	Conda                   any               `json:"conda,omitempty"`
	UserManaged             bool              `json:"userManagedDependencies,omitempty"`
	InterpreterPath         string            `json:"interpreterPath,omitempty"`
	PipPackages             []string          `json:"pip,omitempty"`
	EnvironmentVariables    map[string]string `json:"environmentVariables,omitempty"`
	InferencingStackVersion string            `json:"inferencingStackVersion,omitempty"`
	// The application part; left empty by EnvironmentDigest.
	EntryScript string           `json:"entryScript,omitempty"`
	Source      string           `json:"source,omitempty"`
	SourceName  string           `json:"sourceName,omitempty"`
	ScoreBinary string           `json:"scoreBinary,omitempty"`
	ScoreArgs   []string         `json:"scoreArgs,omitempty"`
	Models      []canonicalModel `json:"models,omitempty"`
}

type canonicalModel struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Digest  string `json:"digest"`
}

// canonical validates s and returns its canonical form.
func (s *Spec) canonical() (*canonicalSpec, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, format, args...))
	}
	c := &canonicalSpec{V: canonicalVersion}

	baseImage := strings.TrimSpace(s.BaseImage)
	baseDockerfile := normaliseText(s.BaseDockerfile)
	switch {
	case baseImage != "" && baseDockerfile != "":
		bad("baseImage %q and baseDockerfile are both set; they are mutually exclusive", s.BaseImage)
	case baseDockerfile != "":
		if !hasFrom(baseDockerfile) {
			bad("baseDockerfile has no FROM instruction")
		}
		if escapeDirective.MatchString(baseDockerfile) {
			bad("baseDockerfile sets a parser escape directive; only the default backslash escape is supported")
		}
		c.BaseDockerfile = baseDockerfile
	default:
		if baseImage == "" {
			baseImage = DefaultBaseImage
		}
		norm, err := normaliseImageRef(baseImage)
		if err != nil {
			bad("baseImage %q is not a valid image reference: %v", s.BaseImage, err)
		}
		c.BaseImage = norm
	}
	c.DockerSteps = normaliseText(s.DockerSteps)
	if strings.ContainsRune(c.DockerSteps, 0) {
		bad("extraDockerfileSteps contains a NUL byte")
	}

	if strings.TrimSpace(s.CondaYAML) != "" {
		if s.UserManaged {
			bad("condaDependencies is set but userManagedDependencies is true; a user-managed environment installs no conda dependencies")
		}
		conda, err := canonicalConda([]byte(s.CondaYAML))
		if err != nil {
			errs = append(errs, err)
		}
		c.Conda = conda
	}
	c.UserManaged = s.UserManaged
	if ip := strings.TrimSpace(s.InterpreterPath); ip != "" {
		if !path.IsAbs(ip) || strings.ContainsAny(ip, "\n\r\x00\"") {
			bad("interpreterPath %q is not an absolute path", s.InterpreterPath)
		}
		c.InterpreterPath = path.Clean(ip)
	}

	pips := map[string]bool{}
	for i, p := range s.PipPackages {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
			bad("pip package %d is empty", i)
		case strings.ContainsAny(p, "\n\r\x00"):
			bad("pip package %q contains a line break", p)
		default:
			pips[p] = true
		}
	}
	for p := range pips {
		c.PipPackages = append(c.PipPackages, p)
	}
	sort.Strings(c.PipPackages)

	if len(s.EnvironmentVariables) > 0 {
		c.EnvironmentVariables = map[string]string{}
		for _, k := range sortedKeys(s.EnvironmentVariables) {
			v := s.EnvironmentVariables[k]
			if !envVarName.MatchString(k) {
				bad("environmentVariables name %q is not a valid variable name (letters, digits, _; not starting with a digit)", k)
				continue
			}
			if strings.ContainsAny(v, "\n\r\x00") {
				bad("environmentVariables %s value %q contains a line break or NUL", k, v)
				continue
			}
			c.EnvironmentVariables[k] = v
		}
	}
	switch s.InferencingStackVersion {
	case "", "latest":
		c.InferencingStackVersion = s.InferencingStackVersion
	default:
		bad("inferencingStackVersion %q is not supported; use \"latest\" or leave it empty", s.InferencingStackVersion)
	}

	if s.EntryScript != "" {
		es, err := cleanRelPath(s.EntryScript)
		if err != nil {
			bad("entryScript %q %v", s.EntryScript, err)
		}
		c.EntryScript = es
	}
	if s.Source != "" {
		if err := s.Source.Validate(); err != nil {
			bad("source digest %q is not a valid digest: %v", s.Source, err)
		}
		c.Source = string(s.Source)
	}
	switch {
	case s.Source != "" && s.SourceName == "":
		bad("sourceName is required with source %s: the source directory's name, under which it lands in %s", s.Source, AppRoot)
	case s.Source == "" && s.SourceName != "":
		bad("sourceName %q is set but no source is baked in (source is empty)", s.SourceName)
	case s.SourceName != "":
		if err := checkSourceName(s.SourceName); err != nil {
			bad("sourceName %q %v", s.SourceName, err)
		}
		c.SourceName = s.SourceName
	}
	if s.ScoreBinary != "" {
		if err := s.ScoreBinary.Validate(); err != nil {
			bad("scoreBinary digest %q is not a valid digest: %v", s.ScoreBinary, err)
		}
		c.ScoreBinary = string(s.ScoreBinary)
	}
	for _, a := range s.ScoreArgs {
		if strings.ContainsAny(a, "\x00\n\r") {
			bad("scoreArgs %q contains a line break or NUL", a)
		}
	}
	c.ScoreArgs = append([]string(nil), s.ScoreArgs...)
	if s.BakeModels {
		seen := map[string]bool{}
		for _, m := range s.Models {
			id := fmt.Sprintf("%s:%d", m.Name, m.Version)
			switch {
			case !modelName.MatchString(m.Name):
				bad("model name %q does not match %s", m.Name, modelName)
			case m.Version < 1:
				bad("model %s version %d is below 1", m.Name, m.Version)
			case seen[id]:
				bad("model %s is listed twice", id)
			}
			seen[id] = true
			if err := m.Digest.Validate(); err != nil {
				bad("model %s digest %q is not a valid digest: %v", id, m.Digest, err)
			}
			c.Models = append(c.Models, canonicalModel{Name: m.Name, Version: m.Version, Digest: string(m.Digest)})
		}
		sort.Slice(c.Models, func(i, j int) bool {
			if c.Models[i].Name != c.Models[j].Name {
				return c.Models[i].Name < c.Models[j].Name
			}
			return c.Models[i].Version < c.Models[j].Version
		})
		if len(c.Models) == 0 {
			bad("bakeModels is set but there are no models")
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Canonical returns the canonical JSON form of s that Digest hashes: fields in
// a fixed order, text with LF line endings and no trailing blanks, the base
// image normalised, pip packages and models sorted, the conda file reduced
// to its meaning. Name and Version are left out.
func (s *Spec) Canonical() ([]byte, error) {
	c, err := s.canonical()
	if err != nil {
		return nil, err
	}
	return marshalCanonical(c)
}

func marshalCanonical(c *canonicalSpec) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "canonical form: %w", err)
	}
	return b, nil
}

// Digest returns the sha256 digest of the canonical form: equal content gives
// an equal digest, any change that alters the image gives another one.
func (s *Spec) Digest() (digest.Digest, error) {
	b, err := s.Canonical()
	if err != nil {
		return "", err
	}
	return digest.SHA256.FromBytes(b), nil
}

// EnvironmentDigest returns the digest of the environment part alone (base,
// Docker steps, Python dependencies, environment variables, inferencing
// stack): Azure ML's image-reuse key. It ignores the entry script, source,
// scoring binary and models.
func (s *Spec) EnvironmentDigest() (digest.Digest, error) {
	c, err := s.canonical()
	if err != nil {
		return "", err
	}
	c.EntryScript, c.Source, c.SourceName, c.ScoreBinary, c.ScoreArgs, c.Models = "", "", "", "", nil, nil
	b, err := marshalCanonical(c)
	if err != nil {
		return "", err
	}
	return digest.SHA256.FromBytes(b), nil
}

// Ref returns the tag the image for s gets: "aksml/env:<hex digest>".
func (s *Spec) Ref() (string, error) {
	d, err := s.Digest()
	if err != nil {
		return "", err
	}
	return RefFor(Repository, d), nil
}

// RefFor returns repository:<hex of d>.
func RefFor(repository string, d digest.Digest) string {
	return repository + ":" + d.Encoded()
}

// normaliseText turns CRLF and CR into LF, trims trailing blanks from every
// line and drops leading and trailing blank lines, so that the same text
// edited on another system hashes the same.
func normaliseText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}

// hasFrom reports whether a Dockerfile text has a FROM instruction.
func hasFrom(dockerfile string) bool {
	for _, l := range strings.Split(dockerfile, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			return true
		}
	}
	return false
}

// normaliseImageRef returns the fully qualified form of an image reference
// ("ubuntu" → "docker.io/library/ubuntu:latest"); "scratch" stays.
func normaliseImageRef(ref string) (string, error) {
	if ref == "scratch" {
		return ref, nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	return reference.TagNameOnly(named).String(), nil
}

// sourceNameChars are the characters a SourceName may hold: none that a
// Dockerfile would expand ($), quote or escape.
var sourceNameChars = regexp.MustCompile(`^[A-Za-z0-9 ._+@=,-]+$`)

// checkSourceName checks that name can be the source directory's folder in
// the app root.
func checkSourceName(name string) error {
	switch {
	case len(name) > 255:
		return fmt.Errorf("is %d bytes long; a folder name holds at most 255", len(name))
	case !sourceNameChars.MatchString(name):
		return errors.New("must be one folder name of letters, digits, space and . _ - + @ = , (rename the source directory)")
	case name == "." || name == ".." || strings.TrimSpace(name) != name:
		return errors.New("must be a folder name, not . or .., without leading or trailing spaces")
	case name == path.Base(ModelsRoot):
		return fmt.Errorf("is the folder of the models (%s); rename the source directory", ModelsRoot)
	}
	return nil
}

// cleanRelPath checks that p is a relative slash path inside its root and
// returns it cleaned.
func cleanRelPath(p string) (string, error) {
	if strings.ContainsAny(p, "\\\x00\n\r") {
		return "", errors.New("must use forward slashes and no control characters")
	}
	if path.IsAbs(p) {
		return "", errors.New("must be relative to the source directory")
	}
	c := path.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("must name a file inside the source directory")
	}
	return c, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
