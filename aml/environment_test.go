package aml

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/google/go-cmp/cmp"
)

func TestEnvironmentValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"conda.yml": "dependencies: [python=3.8]\n", "adir/": ""})
	condaFile := filepath.Join(dir, "conda.yml")
	valid := func() *Environment {
		return &Environment{
			Name:                 "my-env",
			Python:               PythonSection{CondaDependencies: &CondaDependencies{Channels: []string{"conda-forge"}, Dependencies: []string{"python=3.8"}, PipPackages: []string{"azureml-defaults"}}},
			Docker:               DockerSection{BaseImage: "mcr.microsoft.com/azureml/base:latest", ShmSize: "2g"},
			EnvironmentVariables: map[string]string{"OMP_NUM_THREADS": "1", "_X": "y"},
		}
	}
	tests := []struct {
		rule   string
		change func(e *Environment)
		want   string // error substring; "" means valid
	}{
		{"a complete environment is valid", func(e *Environment) {}, ""},
		{"user-managed with an interpreter is valid", func(e *Environment) {
			e.Python = PythonSection{UserManagedDependencies: true, InterpreterPath: "/usr/bin/python3"}
		}, ""},
		{"a Dockerfile instead of an image is valid", func(e *Environment) { e.Docker = DockerSection{BaseDockerfile: "FROM ubuntu:22.04\n"} }, ""},
		{"name is required", func(e *Environment) { e.Name = "" }, "name is required"},
		{"name follows the model name rule", func(e *Environment) { e.Name = "my env" }, `name "my env" does not match`},
		{"version is not negative", func(e *Environment) { e.Version = -1 }, "version -1 is negative"},
		{"base_image and base_dockerfile are exclusive", func(e *Environment) { e.Docker.BaseDockerfile = "FROM x" },
			`docker.base_image "mcr.microsoft.com/azureml/base:latest" and docker.base_dockerfile are mutually exclusive`},
		{"base_image_registry needs base_image", func(e *Environment) {
			e.Docker.BaseImage = ""
			e.Docker.BaseImageRegistry = &ContainerRegistry{Address: "myacr.azurecr.io"}
		}, `docker.base_image_registry "myacr.azurecr.io" is set without docker.base_image`},
		{"shm_size is a docker size", func(e *Environment) { e.Docker.ShmSize = "two gigs" }, `docker.shm_size "two gigs" is not a size`},
		{"user-managed excludes conda_dependencies", func(e *Environment) { e.Python.UserManagedDependencies = true },
			"python.conda_dependencies cannot be set when python.user_managed_dependencies is true"},
		{"user-managed excludes conda_dependencies_file", func(e *Environment) {
			e.Python = PythonSection{UserManagedDependencies: true, CondaDependenciesFile: condaFile}
		}, "python.conda_dependencies_file"},
		{"conda_dependencies and conda_dependencies_file are exclusive", func(e *Environment) { e.Python.CondaDependenciesFile = condaFile },
			"python.conda_dependencies and python.conda_dependencies_file"},
		{"conda_dependencies_file exists", func(e *Environment) {
			e.Python = PythonSection{CondaDependenciesFile: filepath.Join(dir, "missing.yml")}
		}, "missing.yml\" does not exist"},
		{"conda_dependencies_file is a file", func(e *Environment) {
			e.Python = PythonSection{CondaDependenciesFile: filepath.Join(dir, "adir")}
		}, "is not a regular file"},
		{"environment variable names are valid", func(e *Environment) { e.EnvironmentVariables["1BAD-NAME"] = "x" },
			`environment_variables key "1BAD-NAME" is not a valid variable name`},
		{"conda channels are not empty", func(e *Environment) { e.Python.CondaDependencies.Channels = []string{""} },
			"python.conda_dependencies.channels[0] is empty"},
		{"conda dependencies are not empty", func(e *Environment) { e.Python.CondaDependencies.Dependencies = []string{"numpy", " "} },
			"python.conda_dependencies.dependencies[1] is empty"},
		{"pip packages are not empty", func(e *Environment) { e.Python.CondaDependencies.PipPackages = []string{""} },
			"python.conda_dependencies.pip[0] is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			e := valid()
			tt.change(e)
			err := e.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, errcode.InvalidArgument, tt.want)
			if n := joinedLen(err); n != 1 {
				t.Errorf("%d errors, want exactly 1: %v", n, err)
			}
		})
	}
}

func TestRegisterEnvironment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"env.yml": "name: x\nchannels: [conda-forge]\ndependencies:\n- python=3.8\n- pip:\n  - azureml-defaults\n"})

	e1, err := ws.RegisterEnvironment(ctx, &Environment{
		Name:   "env",
		Python: PythonSection{CondaDependenciesFile: filepath.Join(dir, "env.yml")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Environment{Name: "env", Version: 1, Python: PythonSection{CondaDependencies: &CondaDependencies{
		Name: "x", Channels: []string{"conda-forge"}, Dependencies: []string{"python=3.8"}, PipPackages: []string{"azureml-defaults"}}}}
	if diff := cmp.Diff(want, e1); diff != "" {
		t.Fatalf("registered (-want +got):\n%s", diff)
	}
	// The same definition again is the same version.
	same := e1.Clone()
	same.Version = 0
	if again, err := ws.RegisterEnvironment(ctx, same); err != nil || again.Version != 1 {
		t.Fatalf("re-register identical = %v, %v; want version 1", again, err)
	}
	changed := e1.Clone()
	changed.EnvironmentVariables = map[string]string{"A": "1"}
	e2, err := ws.RegisterEnvironment(ctx, changed)
	if err != nil || e2.Version != 2 {
		t.Fatalf("register changed = %v, %v; want version 2", e2, err)
	}
	if got, err := ws.Environment(ctx, "env", 0); err != nil || !cmp.Equal(got, e2) {
		t.Errorf("latest = %v, %v; want %v", got, err, e2)
	}
	if got, err := ws.Environment(ctx, "env", 1); err != nil || !cmp.Equal(got, e1) {
		t.Errorf("version 1 = %v, %v", got, err)
	}
	_, err = ws.Environment(ctx, "env", 3)
	wantErr(t, err, errcode.NotFound, "env:3")
	_, err = ws.Environment(ctx, "other", 0)
	wantErr(t, err, errcode.NotFound, `"other"`)
	_, err = ws.RegisterEnvironment(ctx, &Environment{Name: "bad name"})
	wantErr(t, err, errcode.InvalidArgument, "name")
	all, err := ws.ListEnvironments(ctx)
	if err != nil || len(all) != 2 || all[0].String() != "env:1" || all[1].String() != "env:2" {
		t.Errorf("ListEnvironments = %v, %v", all, err)
	}
}

func TestParseCondaDependencies(t *testing.T) {
	t.Parallel()
	good := `# Conda environment specification.
name: project_environment
prefix: /home/me/miniconda/envs/x
dependencies:
  # The python interpreter version.
- python=3.6.2
- pip:
  - numpy
  - azureml-defaults~=1.27.0
- 3.8
- numpy
- pip:
  - h5py<3.0.0
channels:
- anaconda
- conda-forge
`
	c, err := ParseCondaDependencies([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := &CondaDependencies{
		Name:         "project_environment",
		Channels:     []string{"anaconda", "conda-forge"},
		Dependencies: []string{"python=3.6.2", "3.8", "numpy"},
		PipPackages:  []string{"numpy", "azureml-defaults~=1.27.0", "h5py<3.0.0"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Fatalf("parse (-want +got):\n%s", diff)
	}
	back, err := ParseCondaDependencies(c.YAML())
	if err != nil || !cmp.Equal(back, c) {
		t.Fatalf("YAML round trip = %v, %v\n%s", back, err, c.YAML())
	}
	if !c.HasPackage("azureml_defaults") || !c.HasPackage("NumPy") || c.HasPackage("azureml") {
		t.Errorf("HasPackage is wrong")
	}
	// Nulls are empty sections.
	if c, err := ParseCondaDependencies([]byte("name:\nchannels:\ndependencies:\n- pip:\n")); err != nil || !cmp.Equal(c, &CondaDependencies{}) {
		t.Errorf("null sections = %v, %v", c, err)
	}

	tests := []struct {
		rule, yaml, want string
	}{
		{"the file is not empty", "", "conda file is empty"},
		{"the file is not just null", "~\n", "conda file is empty"},
		{"the YAML parses", "dependencies: [python\n", "invalid YAML"},
		{"the top level is a mapping", "- python\n", "top level: expected a mapping"},
		{"keys are not repeated", "name: a\nname: b\n", "line 2: name: duplicate key"},
		{"keys are known", "name: a\nplatforms: [linux-64]\n", "line 2: platforms: unknown field"},
		{"variables are refused with a hint", "variables:\n  A: b\n", "variables: conda environment variables are not supported; set environment_variables"},
		{"name is a string", "name: [a]\n", "name: expected a string, got a sequence"},
		{"channels is a list", "channels: conda-forge\n", "channels: expected a list of strings, got a scalar"},
		{"channels hold strings", "channels:\n- {a: b}\n", "line 2: channels[0]: expected a string, got a mapping"},
		{"dependencies is a list", "dependencies: {python: 3}\n", "dependencies: expected a list, got a mapping"},
		{"a dependency is a spec or a pip mapping", "dependencies:\n- [a, b]\n", "dependencies[0]: expected a package spec or a pip mapping, got a sequence"},
		{"only pip holds a sub-list", "dependencies:\n- conda: [a]\n", `dependencies[0]: unknown key "conda"`},
		{"pip is a list", "dependencies:\n- pip: numpy\n", "dependencies[0].pip: expected a list of strings, got a scalar"},
		{"pip entries are strings", "dependencies:\n- pip:\n  - [x]\n", "dependencies[0].pip[0]: expected a string, got a sequence"},
		{"no empty dependency entries", "dependencies:\n- numpy\n-\n", "line 3: dependencies[1]: empty entry"},
		{"no empty channel entries", "channels:\n- ''\n", "channels[0]: empty entry"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			_, err := ParseCondaDependencies([]byte(tt.yaml))
			wantErr(t, err, errcode.InvalidArgument, tt.want)
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		_, err := ParseCondaDependencies([]byte("name: [x]\nchannels: 3\nfoo: 1\n"))
		if n := joinedLen(err); n != 3 {
			t.Errorf("%d errors, want 3: %v", n, err)
		}
	})
	_, err = LoadCondaDependencies(filepath.Join(t.TempDir(), "nope.yml"))
	wantErr(t, err, errcode.InvalidArgument, "nope.yml")
}

func TestEnvironmentJSON(t *testing.T) {
	t.Parallel()
	e := &Environment{
		Name: "e", Version: 3,
		Python:                  PythonSection{InterpreterPath: "python", CondaDependencies: &CondaDependencies{Dependencies: []string{"python=3.8"}, PipPackages: []string{"azureml-defaults"}}},
		Docker:                  DockerSection{BaseImage: "img", BaseImageRegistry: &ContainerRegistry{Address: "r.io", Username: "u", Password: "p"}, SharedVolumes: true, Arguments: []string{"--ipc=host"}},
		EnvironmentVariables:    map[string]string{"A": "1"},
		InferencingStackVersion: "latest",
	}
	data, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"docker":{"arguments":["--ipc=host"],"baseImage":"img","baseImageRegistry":{"address":"r.io","username":"u","password":"p"},"enabled":false,"sharedVolumes":true},"environmentVariables":{"A":"1"},"inferencingStackVersion":"latest","name":"e","python":{"condaDependencies":{"dependencies":["python=3.8",{"pip":["azureml-defaults"]}]},"interpreterPath":"python","userManagedDependencies":false},"version":"3"}`
	if string(data) != want {
		t.Errorf("MarshalJSON =\n%s\nwant\n%s", data, want)
	}
	var back Environment
	if err := back.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, &back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	err = back.UnmarshalJSON([]byte(`{"name": 1, "Python": {}}`))
	wantErr(t, err, errcode.InvalidArgument, "environment: name: expected a string, got a number", "environment: Python: unknown field")
	if !errors.Is(back.UnmarshalJSON([]byte(`[]`)), errcode.InvalidArgument) {
		t.Error("an array decoded as an environment")
	}
	if !strings.Contains(e.String(), "e:3") {
		t.Errorf("String() = %q", e.String())
	}
}
