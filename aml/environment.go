package aml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"

	"github.com/aksml/aksml/errcode"
	bolt "go.etcd.io/bbolt"
)

// Environment is the software a scoring container runs in
// (azureml.core.Environment): Python dependencies, the Docker base, and
// environment variables. Registered in a workspace it gets a version,
// counted from 1 per name.
type Environment struct {
	// Name identifies the environment; it follows ModelNamePattern.
	Name string
	// Version is set by RegisterEnvironment; 0 on an unregistered value.
	Version int
	// Python says how Python dependencies are provided.
	Python PythonSection
	// Docker says which image the container is built from.
	Docker DockerSection
	// EnvironmentVariables are set in the scoring container.
	EnvironmentVariables map[string]string
	// InferencingStackVersion is "latest" to add the inference stack to a
	// custom image; empty otherwise.
	InferencingStackVersion string
}

// PythonSection is Environment.python.
type PythonSection struct {
	// UserManagedDependencies means the image already has every package:
	// nothing is installed and InterpreterPath is run. It excludes
	// CondaDependencies and CondaDependenciesFile.
	UserManagedDependencies bool
	// InterpreterPath is the Python to run: with UserManagedDependencies
	// it is run as is; empty means DefaultInterpreter, python3 on PATH.
	// With conda dependencies it is ignored: they are installed into a
	// virtual environment (Workspace.PythonEnvironment).
	InterpreterPath string
	// CondaDependencies lists the packages to install.
	CondaDependencies *CondaDependencies
	// CondaDependenciesFile is a conda YAML file to read the packages from
	// instead; RegisterEnvironment inlines it into CondaDependencies.
	CondaDependenciesFile string
	// BaseCondaEnvironment names a conda environment to start from.
	BaseCondaEnvironment string
}

// DockerSection is Environment.docker.
type DockerSection struct {
	// Enabled is kept for compatibility with training configurations.
	Enabled bool
	// BaseImage is the image to build on ("mcr.microsoft.com/azureml/…").
	// It excludes BaseDockerfile.
	BaseImage string
	// BaseDockerfile is the text of a Dockerfile to build the base from.
	BaseDockerfile string
	// BaseImageRegistry holds the registry and credentials of BaseImage.
	BaseImageRegistry *ContainerRegistry
	// Arguments are extra docker run arguments.
	Arguments []string
	// SharedVolumes is a docker run setting kept for compatibility.
	SharedVolumes bool
	// ShmSize is the size of /dev/shm, such as "2g".
	ShmSize string
}

// ContainerRegistry is an image registry and its credentials
// (azureml.core.ContainerRegistry).
type ContainerRegistry struct {
	// Address is the registry host ("myacr.azurecr.io").
	Address string
	// Username and Password authenticate; empty for a public registry.
	Username string
	// Password goes with Username.
	Password string
}

func (d *DockerSection) isZero() bool {
	return !d.Enabled && d.BaseImage == "" && d.BaseDockerfile == "" && d.BaseImageRegistry == nil &&
		len(d.Arguments) == 0 && !d.SharedVolumes && d.ShmSize == ""
}

var (
	envVarRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	shmSizeRE = regexp.MustCompile(`^[0-9]+[bkmgBKMG]?$`)
)

// Validate checks every rule of the environment and reports every broken
// one at once (InvalidArgument). Field names are the Python SDK's.
func (e *Environment) Validate() error {
	return errors.Join(e.validate("")...)
}

func (e *Environment) validate(prefix string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, prefix+format, args...))
	}
	switch {
	case e.Name == "":
		bad("name is required")
	case !modelNameRE.MatchString(e.Name):
		bad("name %q does not match %s", e.Name, ModelNamePattern)
	}
	if e.Version < 0 {
		bad("version %d is negative", e.Version)
	}
	d := &e.Docker
	if d.BaseImage != "" && d.BaseDockerfile != "" {
		bad("docker.base_image %q and docker.base_dockerfile are mutually exclusive", d.BaseImage)
	}
	if d.BaseImageRegistry != nil && d.BaseImage == "" {
		bad("docker.base_image_registry %q is set without docker.base_image", d.BaseImageRegistry.Address)
	}
	if d.ShmSize != "" && !shmSizeRE.MatchString(d.ShmSize) {
		bad("docker.shm_size %q is not a size such as 2g (digits, then b, k, m or g)", d.ShmSize)
	}
	p := &e.Python
	if p.UserManagedDependencies && p.CondaDependencies != nil {
		bad("python.conda_dependencies cannot be set when python.user_managed_dependencies is true")
	}
	if p.UserManagedDependencies && p.CondaDependenciesFile != "" {
		bad("python.conda_dependencies_file %q cannot be set when python.user_managed_dependencies is true", p.CondaDependenciesFile)
	}
	if p.CondaDependencies != nil && p.CondaDependenciesFile != "" {
		bad("python.conda_dependencies and python.conda_dependencies_file %q are mutually exclusive", p.CondaDependenciesFile)
	}
	if p.CondaDependenciesFile != "" {
		if info, err := os.Stat(p.CondaDependenciesFile); err != nil {
			bad("python.conda_dependencies_file %q does not exist", p.CondaDependenciesFile)
		} else if !info.Mode().IsRegular() {
			bad("python.conda_dependencies_file %q is not a regular file", p.CondaDependenciesFile)
		}
	}
	if p.CondaDependencies != nil {
		errs = append(errs, p.CondaDependencies.validate(prefix+"python.conda_dependencies.")...)
	}
	for _, k := range slices.Sorted(maps.Keys(e.EnvironmentVariables)) {
		if !envVarRE.MatchString(k) {
			bad("environment_variables key %q is not a valid variable name (letters, digits and _, not starting with a digit)", k)
		}
	}
	return errs
}

// Clone returns a deep copy of e.
func (e *Environment) Clone() *Environment {
	if e == nil {
		return nil
	}
	c := *e
	c.Python.CondaDependencies = e.Python.CondaDependencies.clone()
	if e.Docker.BaseImageRegistry != nil {
		r := *e.Docker.BaseImageRegistry
		c.Docker.BaseImageRegistry = &r
	}
	c.Docker.Arguments = slices.Clone(e.Docker.Arguments)
	c.EnvironmentVariables = maps.Clone(e.EnvironmentVariables)
	return &c
}

// RegisterEnvironment validates env and stores it as the next version of
// its name, returning the stored copy with Version set. A conda file named
// by Python.CondaDependenciesFile is read and inlined. Like Azure, it does
// not create a new version when the definition equals the latest one: it
// returns that version.
func (ws *Workspace) RegisterEnvironment(ctx context.Context, env *Environment) (*Environment, error) {
	if env == nil {
		return nil, errcode.New(errcode.InvalidArgument, "environment is nil")
	}
	if err := env.Validate(); err != nil {
		return nil, err
	}
	e := env.Clone()
	if f := e.Python.CondaDependenciesFile; f != "" {
		c, err := LoadCondaDependencies(f)
		if err != nil {
			return nil, err
		}
		e.Python.CondaDependencies = c
		e.Python.CondaDependenciesFile = ""
	}
	e.Version = 0
	def, err := e.MarshalJSON()
	if err != nil {
		return nil, err
	}
	err = ws.update(ctx, func(tx *bolt.Tx) error {
		ws.touchBucket(tx, bktEnvs, []byte(e.Name))
		b, err := tx.Bucket(bktEnvs).CreateBucketIfNotExists([]byte(e.Name))
		if err != nil {
			return err
		}
		if _, last := b.Cursor().Last(); last != nil {
			prev, err := decodeStoredEnv(last)
			if err != nil {
				return err
			}
			v := prev.Version
			prev.Version = 0
			if pdef, _ := prev.MarshalJSON(); bytes.Equal(pdef, def) {
				e.Version = v
				return nil
			}
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Version = int(seq)
		data, err := e.MarshalJSON()
		if err != nil {
			return err
		}
		ws.touchKey(tx, bktEnvs, []byte(e.Name), versionKey(seq))
		return b.Put(versionKey(seq), data)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func decodeStoredEnv(data []byte) (*Environment, error) {
	var e Environment
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "corrupt environment record: %v", err)
	}
	return &e, nil
}

// Environment returns version of the registered environment name; version
// 0 means the latest. It fails with NotFound when there is no such version.
func (ws *Workspace) Environment(ctx context.Context, name string, version int) (*Environment, error) {
	if version < 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "environment version %d is negative", version)
	}
	var e *Environment
	err := ws.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bktEnvs).Bucket([]byte(name))
		var data []byte
		if b != nil {
			if version == 0 {
				_, data = b.Cursor().Last()
			} else {
				data = b.Get(versionKey(uint64(version)))
			}
		}
		if data == nil {
			if version == 0 {
				return errcode.Errorf(errcode.NotFound, "environment %q is not registered", name)
			}
			return errcode.Errorf(errcode.NotFound, "environment %s:%d is not registered", name, version)
		}
		var err error
		e, err = decodeStoredEnv(data)
		return err
	})
	return e, err
}

// ListEnvironments returns every registered environment version, sorted by
// name and then version.
func (ws *Workspace) ListEnvironments(ctx context.Context) ([]*Environment, error) {
	var out []*Environment
	err := ws.view(ctx, func(tx *bolt.Tx) error {
		envs := tx.Bucket(bktEnvs)
		return envs.ForEachBucket(func(name []byte) error {
			return envs.Bucket(name).ForEach(func(_, v []byte) error {
				e, err := decodeStoredEnv(v)
				if err != nil {
					return err
				}
				out = append(out, e)
				return nil
			})
		})
	})
	return out, err
}

// String returns "name:version" (or the name when unregistered).
func (e *Environment) String() string {
	if e.Version == 0 {
		return e.Name
	}
	return fmt.Sprintf("%s:%d", e.Name, e.Version)
}
