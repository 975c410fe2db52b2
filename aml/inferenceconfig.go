package aml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
)

// InferenceConfig says what runs in a scoring container
// (azureml.core.model.InferenceConfig): an entry script or a Go handler,
// the source directory shipped with it, and the environment.
//
// The legacy fields (Runtime, CondaFile, ExtraDockerfileSteps, EnableGPU,
// CUDAVersion, BaseImage, BaseImageRegistry) are the pre-Environment way of
// describing the image. They are deprecated, as in Azure, and cannot be
// combined with Environment.
type InferenceConfig struct {
	// EntryScript is a Python file with init() and run(raw_data), relative
	// to SourceDirectory when that is set. Exactly one of EntryScript and
	// Handler is required.
	EntryScript string
	// Handler builds a Go-native scoring handler for each replica, in
	// place of an entry script. It cannot be written to inferenceconfig.json.
	Handler scoring.NewHandler
	// SourceDirectory is shipped to the container as the working
	// directory of the entry script.
	SourceDirectory string
	// Environment is the software to run in; nil means the default.
	Environment *Environment
	// Description is free text.
	Description string

	// Runtime is "python" or "spark-py". Deprecated: use Environment.
	Runtime string
	// CondaFile is a conda YAML file, relative to SourceDirectory when set.
	// Deprecated: use Environment.Python.
	CondaFile string
	// ExtraDockerfileSteps is a file of Dockerfile steps, relative to
	// SourceDirectory when set. Deprecated: use Environment.Docker.
	ExtraDockerfileSteps string
	// EnableGPU asks for a GPU image. Deprecated.
	EnableGPU bool
	// CUDAVersion is 9.0, 9.1 or 10.0 and requires EnableGPU. Deprecated.
	CUDAVersion string
	// BaseImage names a custom base image. Deprecated: use
	// Environment.Docker.
	BaseImage string
	// BaseImageRegistry holds BaseImage's registry and credentials.
	// Deprecated: use Environment.Docker.
	BaseImageRegistry *ContainerRegistry

	// UnusedFields names the fields of a decoded inferenceconfig.json that
	// v1's files carried and aksml accepts without using, each as "field is
	// accepted but not used: reason" (see UnmarshalJSON). Warnings lists
	// them; they are never written back.
	UnusedFields []string
}

// Supported legacy values.
var (
	legacyRuntimes     = []string{"python", "spark-py"}
	legacyCUDAVersions = []string{"9.0", "9.1", "10.0"}
)

// resolve joins a path given relative to the source directory.
func (ic *InferenceConfig) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || ic.SourceDirectory == "" {
		return p
	}
	return filepath.Join(ic.SourceDirectory, p)
}

// EntryScriptPath returns the entry script's path on disk: EntryScript
// joined to SourceDirectory when that is set. It is empty for a Go handler.
func (ic *InferenceConfig) EntryScriptPath() string { return ic.resolve(ic.EntryScript) }

// Validate checks every rule of §5 of the reference and reports every broken
// one at once, with InvalidArgument; messages use the Python SDK's field
// names. Paths are checked on disk, relative to the working directory
// unless absolute. Validate does not run Python, so an entry script with a
// syntax error is only found when it starts.
func (ic *InferenceConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, format, args...))
	}
	sourceOK := false
	if ic.SourceDirectory != "" {
		info, err := os.Stat(ic.SourceDirectory)
		switch {
		case err != nil:
			bad("source_directory %q does not exist", ic.SourceDirectory)
		case !info.IsDir():
			bad("source_directory %q is not a directory", ic.SourceDirectory)
		default:
			sourceOK = true
		}
	}
	checkFile := func(field, p string) {
		if p == "" {
			return
		}
		if ic.SourceDirectory != "" && !filepath.IsLocal(p) {
			bad("%s %q must be a path inside source_directory %q", field, p, ic.SourceDirectory)
			return
		}
		if ic.SourceDirectory != "" && !sourceOK {
			return // already reported
		}
		full := ic.resolve(p)
		info, err := os.Stat(full)
		switch {
		case err != nil:
			where := ""
			if ic.SourceDirectory != "" {
				where = " in source_directory " + fmt.Sprintf("%q", ic.SourceDirectory)
			}
			bad("%s %q does not exist%s", field, p, where)
		case !info.Mode().IsRegular():
			bad("%s %q is not a regular file", field, p)
		}
	}

	switch {
	case ic.EntryScript != "" && ic.Handler != nil:
		bad("entry_script %q and handler are mutually exclusive: give a Python entry script or a Go handler", ic.EntryScript)
	case ic.EntryScript == "" && ic.Handler == nil:
		bad("entry_script is required (or a Go handler)")
	}
	if ic.EntryScript != "" {
		if !strings.HasSuffix(ic.EntryScript, ".py") {
			bad("entry_script %q must be a .py file", ic.EntryScript)
		}
		checkFile("entry_script", ic.EntryScript)
	}

	if ic.Environment != nil {
		for _, f := range ic.legacyFields() {
			bad("%s %s cannot be combined with environment: it is a deprecated field; set it on the environment instead", f.name, f.value)
		}
		errs = append(errs, ic.Environment.validate("environment.")...)
	}
	if ic.Runtime != "" && !containsFold(legacyRuntimes, ic.Runtime) {
		bad("runtime %q is not python or spark-py", ic.Runtime)
	}
	if ic.CUDAVersion != "" {
		if !containsFold(legacyCUDAVersions, ic.CUDAVersion) {
			bad("cuda_version %q is not 9.0, 9.1 or 10.0", ic.CUDAVersion)
		}
		if !ic.EnableGPU {
			bad("cuda_version %q requires enable_gpu true", ic.CUDAVersion)
		}
	}
	if ic.BaseImageRegistry != nil && ic.BaseImage == "" {
		bad("base_image_registry %q is set without base_image", ic.BaseImageRegistry.Address)
	}
	checkFile("conda_file", ic.CondaFile)
	checkFile("extra_docker_file_steps", ic.ExtraDockerfileSteps)
	return errors.Join(errs...)
}

type namedValue struct{ name, value string }

// legacyFields lists the deprecated fields that are set.
func (ic *InferenceConfig) legacyFields() []namedValue {
	var out []namedValue
	add := func(name, value string, set bool) {
		if set {
			out = append(out, namedValue{name, value})
		}
	}
	add("runtime", fmt.Sprintf("%q", ic.Runtime), ic.Runtime != "")
	add("conda_file", fmt.Sprintf("%q", ic.CondaFile), ic.CondaFile != "")
	add("extra_docker_file_steps", fmt.Sprintf("%q", ic.ExtraDockerfileSteps), ic.ExtraDockerfileSteps != "")
	add("enable_gpu", "true", ic.EnableGPU)
	add("cuda_version", fmt.Sprintf("%q", ic.CUDAVersion), ic.CUDAVersion != "")
	add("base_image", fmt.Sprintf("%q", ic.BaseImage), ic.BaseImage != "")
	if ic.BaseImageRegistry != nil {
		add("base_image_registry", fmt.Sprintf("%q", ic.BaseImageRegistry.Address), true)
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Warnings returns advice that is not an error, as the Azure SDK prints it:
// deprecated fields in use, an entry-script environment whose conda
// dependencies lack azureml-defaults (or azureml-inference-server-http),
// and a custom base image without inferencing_stack_version "latest".
func (ic *InferenceConfig) Warnings() []string {
	var w []string
	for _, f := range ic.legacyFields() {
		w = append(w, fmt.Sprintf("%s is deprecated; describe the image with an Environment instead", f.name))
	}
	w = append(w, ic.UnusedFields...)
	if ic.EntryScript == "" {
		return w
	}
	var conda *CondaDependencies
	field := ""
	if e := ic.Environment; e != nil {
		if !e.Python.UserManagedDependencies {
			conda, field = e.Python.CondaDependencies, "environment.python.conda_dependencies"
			if conda == nil && e.Python.CondaDependenciesFile != "" {
				conda, _ = LoadCondaDependencies(e.Python.CondaDependenciesFile)
				field = "environment.python.conda_dependencies_file"
			}
		}
		if (e.Docker.BaseDockerfile != "" || (e.Docker.BaseImage != "" && !IsAzureMLBaseImage(e.Docker.BaseImage))) && e.InferencingStackVersion == "" {
			w = append(w, `environment uses a custom base image: set inferencing_stack_version "latest" unless the image already has the inference server`)
		}
	} else if ic.CondaFile != "" {
		conda, _ = LoadCondaDependencies(ic.resolve(ic.CondaFile))
		field = "conda_file"
	}
	if conda != nil && !conda.HasPackage("azureml-defaults") && !conda.HasPackage("azureml-inference-server-http") {
		w = append(w, field+" does not list azureml-defaults (or azureml-inference-server-http): the scoring server may fail with \"exec: gunicorn: not found\"")
	}
	return w
}

// IsAzureMLBaseImage reports whether image is one of Azure ML's own base
// images (mcr.microsoft.com/azureml/...), which are built for Azure ML's
// inference stack and so are not custom base images.
func IsAzureMLBaseImage(image string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(image)), "mcr.microsoft.com/azureml/")
}

// entryScriptCheck parses the script named by argv[1] with ast.parse and
// exits 3 with "line N: message" on a syntax error.
const entryScriptCheck = `import ast, sys
p = sys.argv[1]
try:
    ast.parse(open(p, "rb").read(), p)
except SyntaxError as e:
    sys.stderr.write("line %s: %s" % (e.lineno, e.msg))
    sys.exit(3)
`

// CheckEntryScriptSyntax parses the entry script with Python's ast.parse,
// as the Azure SDK does before a deployment, using the interpreter python
// ("python3" on PATH when empty). A syntax error is InvalidArgument naming
// the line; a missing or failing interpreter is Unavailable. A config with
// a Go handler has nothing to check. Validate does not call it, because it
// starts a process.
func (ic *InferenceConfig) CheckEntryScriptSyntax(ctx context.Context, python string) error {
	if ic.EntryScript == "" {
		return nil
	}
	if python == "" {
		python = "python3"
	}
	path := ic.EntryScriptPath()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, "-c", entryScriptCheck, path)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctxErr(ctx.Err())
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return errcode.Errorf(errcode.InvalidArgument, "entry_script %q does not parse: %s", ic.EntryScript, strings.TrimSpace(stderr.String()))
	}
	return errcode.Errorf(errcode.Unavailable, "check entry_script %q with %s: %v: %s", ic.EntryScript, python, err, strings.TrimSpace(stderr.String()))
}
