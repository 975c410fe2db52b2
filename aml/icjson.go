package aml

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aksml/aksml/errcode"
)

// The JSON shapes of inferenceconfig.json (reference §6). Field names are
// exactly Azure's; decoding is strict (case-sensitive names, unknown fields
// are errors naming the field, every problem reported at once) and encoding
// omits empty fields.

const icFile = "inferenceconfig.json"

type registryJSON struct {
	Address  string `json:"address,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// registryValue encodes a registry as Azure's files do: a bare address
// string when there are no credentials, an object otherwise.
func registryValue(r *ContainerRegistry) any {
	if r == nil {
		return nil
	}
	if r.Username == "" && r.Password == "" {
		return r.Address
	}
	return registryJSON{Address: r.Address, Username: r.Username, Password: r.Password}
}

func decodeRegistry(o *jsonObj, field string, notes *[]string) *ContainerRegistry {
	raw, ok := o.Take(field)
	if !ok {
		return nil
	}
	switch jsonKind(raw) {
	case "a string":
		var s string
		json.Unmarshal(raw, &s)
		return &ContainerRegistry{Address: s}
	case "an object":
		sub := newJSONObj(o.Decoder(), o.Path(field), raw)
		if sub == nil {
			return nil
		}
		r := &ContainerRegistry{}
		sub.str("address", &r.Address)
		sub.str("username", &r.Username)
		sub.str("password", &r.Password)
		sub.acceptUnused("registryIdentity", "an object", whyIdentity, notes)
		sub.done()
		return r
	}
	o.WrongType(field, `a registry address string or an {"address", "username", "password"} object`, raw)
	return nil
}

type dockerJSON struct {
	Arguments         []string `json:"arguments,omitempty"`
	BaseDockerfile    string   `json:"baseDockerfile,omitempty"`
	BaseImage         string   `json:"baseImage,omitempty"`
	BaseImageRegistry any      `json:"baseImageRegistry,omitempty"`
	Enabled           bool     `json:"enabled"`
	SharedVolumes     bool     `json:"sharedVolumes"`
	ShmSize           string   `json:"shmSize,omitempty"`
}

type pythonJSON struct {
	BaseCondaEnvironment    string     `json:"baseCondaEnvironment,omitempty"`
	CondaDependencies       *condaJSON `json:"condaDependencies,omitempty"`
	CondaDependenciesFile   string     `json:"condaDependenciesFile,omitempty"`
	InterpreterPath         string     `json:"interpreterPath,omitempty"`
	UserManagedDependencies bool       `json:"userManagedDependencies"`
}

type envJSON struct {
	Docker                  *dockerJSON       `json:"docker,omitempty"`
	EnvironmentVariables    map[string]string `json:"environmentVariables,omitempty"`
	InferencingStackVersion string            `json:"inferencingStackVersion,omitempty"`
	Name                    string            `json:"name,omitempty"`
	Python                  *pythonJSON       `json:"python,omitempty"`
	Version                 string            `json:"version,omitempty"`
}

func (e *Environment) toJSON() *envJSON {
	j := &envJSON{
		EnvironmentVariables:    e.EnvironmentVariables,
		InferencingStackVersion: e.InferencingStackVersion,
		Name:                    e.Name,
	}
	if e.Version != 0 {
		j.Version = strconv.Itoa(e.Version)
	}
	if d := &e.Docker; !d.isZero() {
		j.Docker = &dockerJSON{
			Arguments:         d.Arguments,
			BaseDockerfile:    d.BaseDockerfile,
			BaseImage:         d.BaseImage,
			BaseImageRegistry: registryValue(d.BaseImageRegistry),
			Enabled:           d.Enabled,
			SharedVolumes:     d.SharedVolumes,
			ShmSize:           d.ShmSize,
		}
	}
	if p := e.Python; p != (PythonSection{}) {
		j.Python = &pythonJSON{
			BaseCondaEnvironment:    p.BaseCondaEnvironment,
			CondaDependenciesFile:   p.CondaDependenciesFile,
			InterpreterPath:         p.InterpreterPath,
			UserManagedDependencies: p.UserManagedDependencies,
		}
		if p.CondaDependencies != nil {
			c := p.CondaDependencies.toJSON()
			j.Python.CondaDependencies = &c
		}
	}
	return j
}

// acceptUnused takes field, which v1's files carried but aksml does not
// use: null or a value of the given JSON kind is accepted, and a value that
// says something (not empty) adds "path: why" to notes.
func (o *jsonObj) acceptUnused(field, kind, why string, notes *[]string) {
	raw, ok := o.Take(field)
	if !ok {
		return
	}
	if jsonKind(raw) != kind {
		o.WrongType(field, kind+" or null", raw)
		return
	}
	if notes != nil && jsonHasContent(raw) {
		*notes = append(*notes, o.Path(field)+" is accepted but not used: "+why)
	}
}

// jsonHasContent reports whether raw holds anything but empty or default
// values: a non-empty string, a non-empty array, a number other than 0, or
// an object with such a member (false and null say nothing).
func jsonHasContent(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return true
	}
	var has func(any) bool
	has = func(v any) bool {
		switch x := v.(type) {
		case string:
			return x != ""
		case float64:
			return x != 0
		case []any:
			return len(x) > 0
		case map[string]any:
			for _, m := range x {
				if has(m) {
					return true
				}
			}
		}
		return false
	}
	return has(v)
}

// Why the v1 fields aksml accepts are not used.
const (
	whySchemaFile   = "the pre-2019 schema file format is not read; /swagger.json comes from the inference_schema decorators or a swagger.json in the source directory"
	whyDependencies = "aksml ships the whole source directory, so files listed here are present when they lie inside it"
	whySpark        = "Spark environments are not supported"
	whyDatabricks   = "Databricks libraries are not supported"
	whyR            = "R environments are not supported"
	whyAssetID      = "an environment is identified by its name and version"
	whyPlatform     = "images are built for the Docker engine's own platform (linux)"
	whyBuildContext = "use baseDockerfile or baseImage; a separate build context is not supported"
	whyIdentity     = "registry credentials come from username and password; managed identities do not exist outside Azure"
)

func decodeEnv(o *jsonObj, notes *[]string) *Environment {
	e := &Environment{}
	o.acceptUnused("assetId", "a string", whyAssetID, notes)
	o.acceptUnused("spark", "an object", whySpark, notes)
	o.acceptUnused("databricks", "an object", whyDatabricks, notes)
	o.acceptUnused("r", "an object", whyR, notes)
	o.str("name", &e.Name)
	o.count("version", &e.Version)
	o.strMap("environmentVariables", &e.EnvironmentVariables)
	o.str("inferencingStackVersion", &e.InferencingStackVersion)
	if d := o.obj("docker"); d != nil {
		d.strList("arguments", &e.Docker.Arguments)
		d.str("baseDockerfile", &e.Docker.BaseDockerfile)
		d.str("baseImage", &e.Docker.BaseImage)
		e.Docker.BaseImageRegistry = decodeRegistry(d, "baseImageRegistry", notes)
		d.acceptUnused("platform", "an object", whyPlatform, notes)
		d.acceptUnused("buildContext", "an object", whyBuildContext, notes)
		d.boolean("enabled", &e.Docker.Enabled)
		d.boolean("sharedVolumes", &e.Docker.SharedVolumes)
		d.str("shmSize", &e.Docker.ShmSize)
		d.done()
	}
	if p := o.obj("python"); p != nil {
		p.str("baseCondaEnvironment", &e.Python.BaseCondaEnvironment)
		if c := p.obj("condaDependencies"); c != nil {
			e.Python.CondaDependencies = decodeCondaJSON(c)
		}
		p.str("condaDependenciesFile", &e.Python.CondaDependenciesFile)
		p.str("interpreterPath", &e.Python.InterpreterPath)
		p.boolean("userManagedDependencies", &e.Python.UserManagedDependencies)
		p.done()
	}
	o.done()
	return e
}

// MarshalJSON encodes the environment in the "environment" shape of
// inferenceconfig.json.
func (e *Environment) MarshalJSON() ([]byte, error) {
	return json.Marshal(e.toJSON())
}

// UnmarshalJSON decodes the "environment" shape of inferenceconfig.json,
// strictly: unknown fields and wrong types are InvalidArgument errors naming
// the field, all reported at once. It does not validate the result.
func (e *Environment) UnmarshalJSON(data []byte) error {
	d := newJSONDecoder("environment")
	o := newJSONObj(d, "", data)
	errs := d.Errs()
	if o == nil {
		if len(errs) == 0 {
			*e = Environment{}
		}
		return errors.Join(errs...)
	}
	dec := decodeEnv(o, nil)
	if err := d.Err(); err != nil {
		return err
	}
	*e = *dec
	return nil
}

type icJSON struct {
	EntryScript          string   `json:"entryScript,omitempty"`
	SourceDirectory      string   `json:"sourceDirectory,omitempty"`
	Description          string   `json:"description,omitempty"`
	Environment          *envJSON `json:"environment,omitempty"`
	Runtime              string   `json:"runtime,omitempty"`
	CondaFile            string   `json:"condaFile,omitempty"`
	ExtraDockerfileSteps string   `json:"extraDockerfileSteps,omitempty"`
	EnableGpu            bool     `json:"enableGpu,omitempty"`
	CudaVersion          string   `json:"cudaVersion,omitempty"`
	BaseImage            string   `json:"baseImage,omitempty"`
	BaseImageRegistry    any      `json:"baseImageRegistry,omitempty"`
}

// MarshalJSON encodes the config as inferenceconfig.json. A config with a
// Go Handler cannot be encoded (InvalidArgument): a function has no JSON
// form.
func (ic *InferenceConfig) MarshalJSON() ([]byte, error) {
	if ic.Handler != nil {
		return nil, errcode.New(errcode.InvalidArgument, "an inference config with a Go handler cannot be written to inferenceconfig.json")
	}
	j := icJSON{
		EntryScript:          ic.EntryScript,
		SourceDirectory:      ic.SourceDirectory,
		Description:          ic.Description,
		Runtime:              ic.Runtime,
		CondaFile:            ic.CondaFile,
		ExtraDockerfileSteps: ic.ExtraDockerfileSteps,
		EnableGpu:            ic.EnableGPU,
		CudaVersion:          ic.CUDAVersion,
		BaseImage:            ic.BaseImage,
		BaseImageRegistry:    registryValue(ic.BaseImageRegistry),
	}
	if ic.Environment != nil {
		j.Environment = ic.Environment.toJSON()
	}
	return json.MarshalIndent(j, "", "  ")
}

// UnmarshalJSON decodes inferenceconfig.json strictly: field names exactly
// as Azure's (extraDockerFileSteps, the spelling of the 2019 docs table, is
// accepted for extraDockerfileSteps), unknown fields and wrong types are
// InvalidArgument errors naming the field, all reported at once. null means
// absent. It does not validate the result and keeps paths as written.
func (ic *InferenceConfig) UnmarshalJSON(data []byte) error {
	dec, err := decodeInferenceConfig(data)
	if err != nil {
		return err
	}
	*ic = *dec
	return nil
}

// ParseInferenceConfig decodes the contents of an inferenceconfig.json
// file, like UnmarshalJSON, but also gives JSON syntax errors the
// InvalidArgument code (json.Unmarshal reports those itself, uncoded, before
// calling UnmarshalJSON). Paths are kept as written.
func ParseInferenceConfig(data []byte) (*InferenceConfig, error) {
	return decodeInferenceConfig(data)
}

func decodeInferenceConfig(data []byte) (*InferenceConfig, error) {
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s: invalid JSON: %v", icFile, err)
	}
	d := newJSONDecoder(icFile)
	o := newJSONObj(d, "", data)
	if o == nil {
		errs := d.Errs()
		if len(errs) == 0 {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "%s: expected an object, got null", icFile))
		}
		return nil, errors.Join(errs...)
	}
	ic := &InferenceConfig{}
	o.str("entryScript", &ic.EntryScript)
	o.str("sourceDirectory", &ic.SourceDirectory)
	o.str("description", &ic.Description)
	if e := o.obj("environment"); e != nil {
		ic.Environment = decodeEnv(e, &ic.UnusedFields)
	}
	o.str("runtime", &ic.Runtime)
	o.str("condaFile", &ic.CondaFile)
	o.str("extraDockerfileSteps", &ic.ExtraDockerfileSteps)
	if o.Has("extraDockerFileSteps") {
		if ic.ExtraDockerfileSteps != "" {
			o.Take("extraDockerFileSteps")
			o.Fail("extraDockerFileSteps", "duplicates extraDockerfileSteps")
		} else {
			o.str("extraDockerFileSteps", &ic.ExtraDockerfileSteps)
		}
	}
	o.boolean("enableGpu", &ic.EnableGPU)
	o.strOrNumber("cudaVersion", &ic.CUDAVersion)
	o.str("baseImage", &ic.BaseImage)
	ic.BaseImageRegistry = decodeRegistry(o, "baseImageRegistry", &ic.UnusedFields)
	// Fields of v1's files that aksml accepts without using them.
	o.acceptUnused("schemaFile", "a string", whySchemaFile, &ic.UnusedFields)
	o.acceptUnused("dependencies", "an array", whyDependencies, &ic.UnusedFields)
	o.done()
	if err := d.Err(); err != nil {
		return nil, err
	}
	return ic, nil
}

// LoadInferenceConfig reads an inferenceconfig.json file. Relative paths
// in it are resolved against the file's directory: sourceDirectory, and
// environment.python.condaDependenciesFile; entryScript, condaFile and
// extraDockerfileSteps stay relative to sourceDirectory when one is given,
// and are resolved against the file's directory otherwise. The result is
// decoded but not validated: call Validate.
func LoadInferenceConfig(path string) (*InferenceConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errcode.Errorf(errcode.NotFound, "inference config %s does not exist", path)
		}
		return nil, errcode.Errorf(errcode.InvalidArgument, "inference config %s: %v", path, err)
	}
	ic, err := decodeInferenceConfig(data)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "inference config %s: %v", path, err)
	}
	ic.mapPaths(filepath.Dir(abs), func(base, p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	})
	return ic, nil
}

// SaveInferenceConfig writes ic to path as inferenceconfig.json. Absolute
// paths inside the file's directory are written relative to it, so that
// LoadInferenceConfig reads back the same config wherever the directory is
// moved.
func SaveInferenceConfig(path string, ic *InferenceConfig) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return errcode.Errorf(errcode.InvalidArgument, "inference config %s: %v", path, err)
	}
	c := *ic
	c.Environment = ic.Environment.Clone()
	c.mapPaths(filepath.Dir(abs), func(base, p string) string {
		if !filepath.IsAbs(p) {
			return p
		}
		if rel, err := filepath.Rel(base, p); err == nil && filepath.IsLocal(rel) {
			return rel
		}
		if filepath.Clean(p) == base {
			return "."
		}
		return p
	})
	data, err := c.MarshalJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return ioErr("write inference config", err)
	}
	return nil
}

// mapPaths applies f to every path that is relative to the config file's
// directory (see LoadInferenceConfig).
func (ic *InferenceConfig) mapPaths(base string, f func(base, p string) string) {
	if ic.SourceDirectory != "" {
		ic.SourceDirectory = f(base, ic.SourceDirectory)
	} else {
		ic.EntryScript = f(base, ic.EntryScript)
		ic.CondaFile = f(base, ic.CondaFile)
		ic.ExtraDockerfileSteps = f(base, ic.ExtraDockerfileSteps)
	}
	if ic.Environment != nil && ic.Environment.Python.CondaDependenciesFile != "" {
		ic.Environment.Python.CondaDependenciesFile = f(base, ic.Environment.Python.CondaDependenciesFile)
	}
}
