package aml_test

import (
	"archive/zip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/simtest"
	"github.com/aksml/aksml/webservice"
)

// buildWheel writes a minimal pure-Python wheel of package name, version
// 0.1, whose module has triple(x), into a new directory, and returns it.
func buildWheel(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, name+"-0.1-py3-none-any.whl"))
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(f)
	info := name + "-0.1.dist-info/"
	for _, e := range [][2]string{
		{name + ".py", "def triple(x):\n    return 3 * x\n"},
		{info + "METADATA", "Metadata-Version: 2.1\nName: " + name + "\nVersion: 0.1\n"},
		{info + "WHEEL", "Wheel-Version: 1.0\nGenerator: aksml-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
		{info + "RECORD", name + ".py,,\n" + info + "METADATA,,\n" + info + "WHEEL,,\n" + info + "RECORD,,\n"},
	} {
		w, err := z.Create(e[0])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e[1]))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir
}

// A score.py whose conda file names a package only a locally built wheel
// provides deploys and answers; a second deployment of the same content
// reuses the environment; a missing package fails naming it.
func TestIntegrationCondaEnvironment(t *testing.T) {
	if err := exec.Command(aml.SystemPython, "-c", "import venv, pip").Run(); err != nil {
		t.Skipf("%s lacks venv or pip (scripts/install-deps installs python3-venv and python3-pip): %v", aml.SystemPython, err)
	}
	wheels := buildWheel(t, "aksmltiny")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "score.py"), []byte("import json\nimport aksmltiny\n\ndef init():\n    pass\n\ndef run(raw):\n    return aksmltiny.triple(json.loads(raw)['x'])\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	condaEnv := func(name string, pkgs ...string) *aml.Environment {
		return &aml.Environment{Name: name, Python: aml.PythonSection{CondaDependencies: &aml.CondaDependencies{
			Dependencies: []string{"python=3.11", "pip"},
			PipPackages:  append([]string{"--no-index", "--find-links " + wheels}, pkgs...),
		}}}
	}
	env := simtest.New(t, nil)

	start := time.Now()
	py, err := env.Workspace.PythonEnvironment(env.Ctx, condaEnv("tiny", "aksmltiny==0.1"))
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(start)
	if !strings.HasPrefix(py, filepath.Join(env.Workspace.Dir(), "envs")) {
		t.Errorf("interpreter %s is not in the workspace's envs", py)
	}

	for _, name := range []string{"tiny-a", "tiny-b"} {
		// Another name, the same content: the same environment.
		ic := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: src, Environment: condaEnv(name, "aksmltiny==0.1")}
		start := time.Now()
		svc := env.Deploy(name, nil, ic, webservice.DeployConfig{})
		t.Logf("deploy %s with the environment realised: %v", name, time.Since(start))
		out, err := svc.Run(env.Ctx, `{"x": 14}`)
		if err != nil || string(out) != "42" {
			t.Errorf("%s: Run = %s, %v; want 42", name, out, err)
		}
	}
	start = time.Now()
	if again, err := env.Workspace.PythonEnvironment(env.Ctx, condaEnv("tiny-c", "aksmltiny==0.1")); err != nil || again != py {
		t.Errorf("PythonEnvironment again = %s, %v; want %s", again, err, py)
	}
	cached := time.Since(start)
	t.Logf("environment realised cold in %v, cached in %v (%.0fx)", cold, cached, float64(cold)/float64(cached))
	if entries, _ := os.ReadDir(filepath.Join(env.Workspace.Dir(), "envs")); len(entries) != 1 {
		t.Errorf("envs holds %d entries, want the one environment reused", len(entries))
	}

	ic := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: src, Environment: condaEnv("missing", "aksmlnosuchpkg==1.0")}
	_, err = aml.Deploy(env.Ctx, env.Workspace, "missing", nil, ic, webservice.DeployConfig{}, env.Target, nil)
	if !errors.Is(err, errcode.FailedPrecondition) {
		t.Fatalf("deploy with a missing package: %v, want FailedPrecondition", err)
	}
	for _, want := range []string{"package aksmlnosuchpkg==1.0 could not be installed", "interpreter " + filepath.Join(env.Workspace.Dir(), "envs"), aml.SystemPython, "Fix:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestPythonEnvironmentWithoutConda(t *testing.T) {
	ws := simtest.New(t, nil).Workspace
	for _, tt := range []struct {
		env  *aml.Environment
		want string
	}{
		{nil, "python3"},
		{&aml.Environment{Name: "plain"}, "python3"},
		{&aml.Environment{Name: "um", Python: aml.PythonSection{UserManagedDependencies: true, InterpreterPath: "/opt/py/bin/python"}}, "/opt/py/bin/python"},
		{&aml.Environment{Name: "only-python", Python: aml.PythonSection{CondaDependencies: &aml.CondaDependencies{Dependencies: []string{"python=3.8", "pip"}}}}, "python3"},
	} {
		got, err := ws.PythonEnvironment(t.Context(), tt.env)
		if err != nil || got != tt.want {
			t.Errorf("PythonEnvironment(%v) = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
}
