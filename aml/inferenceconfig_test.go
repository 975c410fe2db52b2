package aml

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type echoHandler struct{}

func (echoHandler) Init(context.Context, string) error               { return nil }
func (echoHandler) Run(_ context.Context, in []byte) ([]byte, error) { return in, nil }

var newEcho scoring.NewHandler = func() scoring.Handler { return echoHandler{} }

func TestInferenceConfigValidate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	src := filepath.Join(root, "src")
	writeFiles(t, root, map[string]string{
		"src/score.py":        "def init(): pass\ndef run(raw): return raw\n",
		"src/notes.txt":       "",
		"src/pkg.py/":         "",
		"src/conda.yml":       "dependencies: [python=3.8]\n",
		"src/steps.docker":    "RUN echo hi\n",
		"outside.py":          "",
		"not-a-directory.txt": "",
	})
	env := func() *Environment { return &Environment{Name: "env"} }
	tests := []struct {
		rule string
		ic   InferenceConfig
		want string // error substring; "" means valid
	}{
		{"entry script in a source directory is valid", InferenceConfig{EntryScript: "score.py", SourceDirectory: src, Environment: env()}, ""},
		{"entry script without a source directory is valid", InferenceConfig{EntryScript: filepath.Join(src, "score.py")}, ""},
		{"a Go handler is valid", InferenceConfig{Handler: newEcho, Environment: env()}, ""},
		{"a legacy config is valid", InferenceConfig{EntryScript: "score.py", SourceDirectory: src, Runtime: "Python",
			CondaFile: "conda.yml", ExtraDockerfileSteps: "steps.docker", EnableGPU: true, CUDAVersion: "10.0",
			BaseImage: "img", BaseImageRegistry: &ContainerRegistry{Address: "r.io"}}, ""},

		{"entry_script and handler are exclusive", InferenceConfig{EntryScript: "score.py", SourceDirectory: src, Handler: newEcho},
			`entry_script "score.py" and handler are mutually exclusive`},
		{"entry_script or handler is required", InferenceConfig{SourceDirectory: src}, "entry_script is required"},
		{"entry_script is a .py file", InferenceConfig{EntryScript: "notes.txt", SourceDirectory: src}, `entry_script "notes.txt" must be a .py file`},
		{"entry_script exists in source_directory", InferenceConfig{EntryScript: "missing.py", SourceDirectory: src},
			`entry_script "missing.py" does not exist in source_directory`},
		{"entry_script is a regular file", InferenceConfig{EntryScript: "pkg.py", SourceDirectory: src}, `entry_script "pkg.py" is not a regular file`},
		{"source_directory exists", InferenceConfig{EntryScript: "score.py", SourceDirectory: filepath.Join(root, "nope")},
			"source_directory \"" + filepath.Join(root, "nope") + "\" does not exist"},
		{"source_directory is a directory", InferenceConfig{EntryScript: "score.py", SourceDirectory: filepath.Join(root, "not-a-directory.txt")},
			"is not a directory"},
		{"entry_script stays inside source_directory", InferenceConfig{EntryScript: "../outside.py", SourceDirectory: src},
			`entry_script "../outside.py" must be a path inside source_directory`},
		{"entry_script is relative to source_directory", InferenceConfig{EntryScript: filepath.Join(root, "outside.py"), SourceDirectory: src},
			"must be a path inside source_directory"},
		{"entry_script exists without a source directory", InferenceConfig{EntryScript: filepath.Join(root, "gone.py")}, "gone.py\" does not exist"},

		{"runtime cannot be combined with environment", InferenceConfig{Handler: newEcho, Environment: env(), Runtime: "python"},
			`runtime "python" cannot be combined with environment`},
		{"conda_file cannot be combined with environment", InferenceConfig{Handler: newEcho, Environment: env(), SourceDirectory: src, CondaFile: "conda.yml"},
			`conda_file "conda.yml" cannot be combined with environment`},
		{"extra_docker_file_steps cannot be combined with environment", InferenceConfig{Handler: newEcho, Environment: env(), SourceDirectory: src, ExtraDockerfileSteps: "steps.docker"},
			`extra_docker_file_steps "steps.docker" cannot be combined with environment`},
		{"enable_gpu cannot be combined with environment", InferenceConfig{Handler: newEcho, Environment: env(), EnableGPU: true},
			"enable_gpu true cannot be combined with environment"},
		{"cuda_version cannot be combined with environment", InferenceConfig{Handler: newEcho, Environment: env(), EnableGPU: true, CUDAVersion: "9.1"},
			`cuda_version "9.1" cannot be combined with environment`},
		{"base_image cannot be combined with environment", InferenceConfig{Handler: newEcho, Environment: env(), BaseImage: "img"},
			`base_image "img" cannot be combined with environment`},
		{"base_image_registry cannot be combined with environment", InferenceConfig{Handler: newEcho, Environment: env(), BaseImage: "img", BaseImageRegistry: &ContainerRegistry{Address: "r.io"}},
			`base_image_registry "r.io" cannot be combined with environment`},

		{"runtime is python or spark-py", InferenceConfig{Handler: newEcho, Runtime: "java"}, `runtime "java" is not python or spark-py`},
		{"cuda_version is 9.0, 9.1 or 10.0", InferenceConfig{Handler: newEcho, EnableGPU: true, CUDAVersion: "11.0"}, `cuda_version "11.0" is not 9.0, 9.1 or 10.0`},
		{"cuda_version needs enable_gpu", InferenceConfig{Handler: newEcho, CUDAVersion: "9.0"}, `cuda_version "9.0" requires enable_gpu true`},
		{"base_image_registry needs base_image", InferenceConfig{Handler: newEcho, BaseImageRegistry: &ContainerRegistry{Address: "r.io"}},
			`base_image_registry "r.io" is set without base_image`},
		{"conda_file exists", InferenceConfig{Handler: newEcho, SourceDirectory: src, CondaFile: "env.yml"}, `conda_file "env.yml" does not exist`},
		{"extra_docker_file_steps exists", InferenceConfig{Handler: newEcho, SourceDirectory: src, ExtraDockerfileSteps: "Dockerfile.steps"},
			`extra_docker_file_steps "Dockerfile.steps" does not exist`},
		{"the environment is validated, with its prefix", InferenceConfig{Handler: newEcho, Environment: &Environment{}}, "environment.name is required"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			err := tt.ic.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, errcode.InvalidArgument, tt.want)
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		ic := InferenceConfig{EntryScript: "x.txt", SourceDirectory: src, Runtime: "java", CUDAVersion: "8", Environment: &Environment{Name: "a b"}}
		err := ic.Validate()
		// .py, missing, runtime+env, cuda+env, runtime value, cuda value, cuda without gpu, env name
		if n := joinedLen(err); n != 8 {
			t.Errorf("%d errors, want 8:\n%v", n, err)
		}
	})
}

func TestInferenceConfigWarnings(t *testing.T) {
	t.Parallel()
	noDefaults := &Environment{Name: "e", Python: PythonSection{CondaDependencies: &CondaDependencies{PipPackages: []string{"numpy"}}},
		Docker: DockerSection{BaseImage: "myimage"}}
	ic := &InferenceConfig{EntryScript: "score.py", Environment: noDefaults}
	w := strings.Join(ic.Warnings(), "\n")
	for _, s := range []string{"environment.python.conda_dependencies does not list azureml-defaults", `inferencing_stack_version "latest"`} {
		if !strings.Contains(w, s) {
			t.Errorf("warnings %q lack %q", w, s)
		}
	}
	ok := &InferenceConfig{EntryScript: "score.py", Environment: &Environment{Name: "e",
		Python: PythonSection{CondaDependencies: &CondaDependencies{PipPackages: []string{"azureml-inference-server-http==1.0"}}}}}
	if w := ok.Warnings(); len(w) != 0 {
		t.Errorf("unexpected warnings %q", w)
	}
	legacy := &InferenceConfig{EntryScript: "score.py", Runtime: "python"}
	if w := legacy.Warnings(); len(w) != 1 || !strings.Contains(w[0], "runtime is deprecated") {
		t.Errorf("legacy warnings = %q", w)
	}
}

// The two examples of the Azure docs decode.
func TestInferenceConfigJSONAzureSamples(t *testing.T) {
	t.Parallel()
	const withEnv = `{
    "entryScript": "score.py",
    "environment": {
        "docker": {
            "arguments": [],
            "baseDockerfile": null,
            "baseImage": "mcr.microsoft.com/azureml/base:intelmpi2018.3-ubuntu16.04",
            "enabled": false,
            "sharedVolumes": true,
            "shmSize": null
        },
        "environmentVariables": {
            "EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"
        },
        "name": "my-deploy-env",
        "python": {
            "baseCondaEnvironment": null,
            "condaDependencies": {
                "channels": [
                    "conda-forge"
                ],
                "dependencies": [
                    "python=3.6.2",
                    {
                        "pip": [
                            "azureml-defaults",
                            "azureml-telemetry",
                            "scikit-learn==0.22.1",
                            "inference-schema[numpy-support]"
                        ]
                    }
                ],
                "name": "project_environment"
            },
            "condaDependenciesFile": null,
            "interpreterPath": "python",
            "userManagedDependencies": false
        },
        "version": "1"
    }
}`
	var ic InferenceConfig
	if err := json.Unmarshal([]byte(withEnv), &ic); err != nil {
		t.Fatal(err)
	}
	want := InferenceConfig{EntryScript: "score.py", Environment: &Environment{
		Name: "my-deploy-env", Version: 1,
		Docker:               DockerSection{BaseImage: "mcr.microsoft.com/azureml/base:intelmpi2018.3-ubuntu16.04", SharedVolumes: true},
		EnvironmentVariables: map[string]string{"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
		Python: PythonSection{InterpreterPath: "python", CondaDependencies: &CondaDependencies{
			Name: "project_environment", Channels: []string{"conda-forge"}, Dependencies: []string{"python=3.6.2"},
			PipPackages: []string{"azureml-defaults", "azureml-telemetry", "scikit-learn==0.22.1", "inference-schema[numpy-support]"}}},
	}}
	if diff := cmp.Diff(want, ic, cmpopts.IgnoreFields(InferenceConfig{}, "Handler")); diff != "" {
		t.Errorf("decode (-want +got):\n%s", diff)
	}

	const legacy = `{
   "entryScript": "score.py",
   "runtime": "python",
   "condaFile": "infenv.yml",
   "extraDockerfileSteps": null,
   "sourceDirectory": null,
   "enableGpu": false,
   "baseImage": "mcr.microsoft.com/azureml/o16n-sample-user-base/ubuntu-miniconda",
   "baseImageRegistry": "mcr.microsoft.com"
}`
	var lc InferenceConfig
	if err := json.Unmarshal([]byte(legacy), &lc); err != nil {
		t.Fatal(err)
	}
	wantLegacy := InferenceConfig{EntryScript: "score.py", Runtime: "python", CondaFile: "infenv.yml",
		BaseImage: "mcr.microsoft.com/azureml/o16n-sample-user-base/ubuntu-miniconda", BaseImageRegistry: &ContainerRegistry{Address: "mcr.microsoft.com"}}
	if diff := cmp.Diff(wantLegacy, lc, cmpopts.IgnoreFields(InferenceConfig{}, "Handler")); diff != "" {
		t.Errorf("legacy decode (-want +got):\n%s", diff)
	}
}

func TestInferenceConfigJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rule, json string
		want       []string
	}{
		{"the file is JSON", `{"entryScript": "score.py",}`, []string{"inferenceconfig.json: invalid JSON"}},
		{"the file is an object", `["score.py"]`, []string{"top level: expected an object, got an array"}},
		{"the file is not null", `null`, []string{"expected an object, got null"}},
		{"unknown top-level fields are errors", `{"entryScript": "s.py", "entryscript": "t.py"}`, []string{"inferenceconfig.json: entryscript: unknown field"}},
		{"field names are case-sensitive", `{"EntryScript": "s.py"}`, []string{"EntryScript: unknown field"}},
		{"unknown nested fields are errors", `{"environment": {"python": {"condaDependencies": {"prefix": "/x"}}}}`,
			[]string{"environment.python.condaDependencies.prefix: unknown field"}},
		{"strings are strings", `{"entryScript": 3}`, []string{"entryScript: expected a string, got a number"}},
		{"booleans are booleans", `{"enableGpu": "true"}`, []string{"enableGpu: expected true or false, got a string"}},
		{"sections are objects", `{"environment": "myenv"}`, []string{"environment: expected an object, got a string"}},
		{"environment.version is a whole number", `{"environment": {"version": "latest"}}`, []string{`environment.version: "latest" is not a whole number`}},
		{"lists hold strings", `{"environment": {"docker": {"arguments": ["-it", 3]}}}`, []string{"environment.docker.arguments[1]: expected a string, got a number"}},
		{"lists are lists", `{"environment": {"docker": {"arguments": "-it"}}}`, []string{"environment.docker.arguments: expected an array of strings, got a string"}},
		{"environment variables are strings", `{"environment": {"environmentVariables": {"N": 1}}}`, []string{"environment.environmentVariables.N: expected a string, got a number"}},
		{"a dependency is a string or a pip object", `{"environment": {"python": {"condaDependencies": {"dependencies": [["numpy"]]}}}}`,
			[]string{"environment.python.condaDependencies.dependencies[0]: expected a package spec string"}},
		{"a pip object has only pip", `{"environment": {"python": {"condaDependencies": {"dependencies": [{"conda": ["x"]}]}}}}`,
			[]string{"condaDependencies.dependencies[0].conda: unknown field"}},
		{"a registry is an address or an object", `{"baseImageRegistry": ["r.io"]}`, []string{"baseImageRegistry: expected a registry address string"}},
		{"registry objects have known fields", `{"baseImageRegistry": {"address": "r.io", "token": "t"}}`, []string{"baseImageRegistry.token: unknown field"}},
		{"extraDockerfileSteps is given once", `{"extraDockerfileSteps": "a", "extraDockerFileSteps": "b"}`, []string{"extraDockerFileSteps: duplicates extraDockerfileSteps"}},
		{"cudaVersion is a string or a number", `{"cudaVersion": true}`, []string{"cudaVersion: expected a string or a number, got a boolean"}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			ic, err := ParseInferenceConfig([]byte(tt.json))
			if ic != nil {
				t.Errorf("got a config despite the error")
			}
			wantErr(t, err, errcode.InvalidArgument, tt.want...)
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		var ic InferenceConfig
		err := ic.UnmarshalJSON([]byte(`{"entryScript": 1, "foo": 2, "environment": {"bar": 3, "name": false}}`))
		if n := joinedLen(err); n != 4 {
			t.Errorf("%d errors, want 4: %v", n, err)
		}
	})
	t.Run("accepted variants", func(t *testing.T) {
		var ic InferenceConfig
		err := ic.UnmarshalJSON([]byte(`{"extraDockerFileSteps": "steps", "cudaVersion": 10.0, "environment": {"version": 2}}`))
		if err != nil || ic.ExtraDockerfileSteps != "steps" || ic.CUDAVersion != "10.0" || ic.Environment.Version != 2 {
			t.Errorf("got %+v, %v", ic, err)
		}
	})
}

func TestInferenceConfigFileRoundTrip(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"project/inferenceconfig.json": `{
  "entryScript": "score.py",
  "sourceDirectory": "./src",
  "environment": {"name": "env", "python": {"condaDependenciesFile": "env/conda.yml"}}
}`,
		"project/src/score.py":   "def init(): pass\ndef run(d): return d\n",
		"project/env/conda.yml":  "dependencies: [python=3.8, {pip: [azureml-defaults]}]\n",
		"legacy/ic.json":         `{"entryScript": "score.py", "condaFile": "conda.yml", "runtime": "python"}`,
		"legacy/score.py":        "",
		"legacy/conda.yml":       "dependencies: [python=3.8]\n",
		"elsewhere/.placeholder": "",
	})
	ic, err := LoadInferenceConfig(filepath.Join(root, "project", "inferenceconfig.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ic.SourceDirectory != filepath.Join(root, "project", "src") || ic.EntryScript != "score.py" ||
		ic.Environment.Python.CondaDependenciesFile != filepath.Join(root, "project", "env", "conda.yml") {
		t.Fatalf("paths not resolved against the file: %+v %+v", ic, ic.Environment.Python)
	}
	if err := ic.Validate(); err != nil {
		t.Fatal(err)
	}
	if ic.EntryScriptPath() != filepath.Join(root, "project", "src", "score.py") {
		t.Errorf("EntryScriptPath = %s", ic.EntryScriptPath())
	}

	// Saved next to the original, paths are relative again; loaded back, equal.
	out := filepath.Join(root, "project", "copy.json")
	if err := SaveInferenceConfig(out, ic); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(out)
	if !strings.Contains(string(raw), `"sourceDirectory": "src"`) || !strings.Contains(string(raw), `"condaDependenciesFile": "env/conda.yml"`) {
		t.Errorf("saved file does not use relative paths:\n%s", raw)
	}
	back, err := LoadInferenceConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ic, back, cmpopts.IgnoreFields(InferenceConfig{}, "Handler")); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Saved elsewhere, paths stay absolute and still resolve.
	far := filepath.Join(root, "elsewhere", "ic.json")
	if err := SaveInferenceConfig(far, ic); err != nil {
		t.Fatal(err)
	}
	if back, err := LoadInferenceConfig(far); err != nil || back.SourceDirectory != ic.SourceDirectory {
		t.Errorf("load from elsewhere = %+v, %v", back, err)
	}

	// Without a source directory, the entry script and legacy files are
	// relative to the file.
	lc, err := LoadInferenceConfig(filepath.Join(root, "legacy", "ic.json"))
	if err != nil {
		t.Fatal(err)
	}
	if lc.EntryScript != filepath.Join(root, "legacy", "score.py") || lc.CondaFile != filepath.Join(root, "legacy", "conda.yml") {
		t.Errorf("legacy paths = %q %q", lc.EntryScript, lc.CondaFile)
	}
	if err := lc.Validate(); err != nil {
		t.Fatal(err)
	}

	_, err = LoadInferenceConfig(filepath.Join(root, "missing.json"))
	wantErr(t, err, errcode.NotFound)
	os.WriteFile(filepath.Join(root, "bad.json"), []byte(`{"entryScript": "a.py", "x": 1}`), 0o644)
	_, err = LoadInferenceConfig(filepath.Join(root, "bad.json"))
	wantErr(t, err, errcode.InvalidArgument, "bad.json", "x: unknown field")
	_, err = (&InferenceConfig{Handler: newEcho}).MarshalJSON()
	wantErr(t, err, errcode.InvalidArgument, "Go handler")
}

func TestCheckEntryScriptSyntax(t *testing.T) {
	t.Parallel()
	const python = "/usr/bin/python3" // installed by scripts/install-deps; the test fails without it
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"good.py": "import json\ndef init():\n    pass\ndef run(raw):\n    return json.loads(raw)\n",
		"bad.py":  "def init():\n    pass\ndef run(raw)\n    return raw\n",
	})
	if err := (&InferenceConfig{EntryScript: "good.py", SourceDirectory: src}).CheckEntryScriptSyntax(ctx, python); err != nil {
		t.Fatal(err)
	}
	err := (&InferenceConfig{EntryScript: "bad.py", SourceDirectory: src}).CheckEntryScriptSyntax(ctx, python)
	wantErr(t, err, errcode.InvalidArgument, `entry_script "bad.py" does not parse: line 3`)
	err = (&InferenceConfig{EntryScript: "good.py", SourceDirectory: src}).CheckEntryScriptSyntax(ctx, filepath.Join(src, "no-python"))
	wantErr(t, err, errcode.Unavailable)
	if err := (&InferenceConfig{Handler: newEcho}).CheckEntryScriptSyntax(ctx, python); err != nil {
		t.Errorf("handler config: %v", err)
	}
}
