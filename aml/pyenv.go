package aml

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
)

// DefaultInterpreter is the Python that runs an entry script whose
// environment names no interpreter and installs nothing: python3 on PATH
// (Azure's images call it python; Debian and most Linux systems only have
// python3).
const DefaultInterpreter = "python3"

// SystemPython is the base of the virtual environments aksml creates for
// conda dependencies when it exists: Debian's interpreter, whose
// python3-sklearn, python3-numpy, … packages the environments see (they are
// created with --system-site-packages), so that common dependencies resolve
// offline. Elsewhere python3 on PATH is the base.
const SystemPython = "/usr/bin/python3"

// pyEnvLocks serialises the realisation of one environment directory within
// this process; across processes the directory appears atomically (rename).
var pyEnvLocks sync.Map // dir → *sync.Mutex

// PythonEnvironment realises env's Python dependencies on this machine, as
// Azure ML builds an image per environment, and returns the interpreter that
// runs entry scripts in it:
//
//   - user-managed dependencies: python.interpreter_path as is (python3 on
//     PATH when empty); nothing is installed;
//   - no conda dependencies: DefaultInterpreter;
//   - conda dependencies: a virtual environment in the workspace under
//     envs/<environment digest> (the same content key image.Cache uses for
//     images: equal content shares one environment whatever its name),
//     created from SystemPython with --system-site-packages, with the conda
//     file's conda and pip dependencies installed by that interpreter's pip.
//     The first deployment creates it; later ones reuse it.
//
// A dependency that cannot be installed fails with errcode.FailedPrecondition
// naming the package, the interpreter and the fix. Conda-only concepts have
// no pip counterpart: channels are ignored, "python" and "pip" entries are
// skipped (the base interpreter's version is used), "name=1.2" becomes
// "name==1.2.*". Lines of the pip list that start with "-" (--no-index,
// --find-links DIR, --index-url URL) are pip options, as in a requirements
// file.
func (ws *Workspace) PythonEnvironment(ctx context.Context, env *Environment) (string, error) {
	if env == nil {
		return DefaultInterpreter, nil
	}
	if env.Python.UserManagedDependencies || env.Python.CondaDependencies == nil && env.Python.CondaDependenciesFile == "" {
		if env.Python.InterpreterPath != "" {
			return env.Python.InterpreterPath, nil
		}
		return DefaultInterpreter, nil
	}
	conda := env.Python.CondaDependencies
	if conda == nil {
		c, err := LoadCondaDependencies(env.Python.CondaDependenciesFile)
		if err != nil {
			return "", err
		}
		conda = c
	}
	reqs := pipRequirements(conda)
	if len(reqs) == 0 {
		return DefaultInterpreter, nil
	}
	spec := &image.Spec{CondaYAML: string(conda.YAML()), BaseImage: env.Docker.BaseImage, BaseDockerfile: env.Docker.BaseDockerfile,
		EnvironmentVariables: env.EnvironmentVariables}
	d, err := spec.EnvironmentDigest()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(ws.Dir(), "envs", d.Encoded()[:16])
	python := filepath.Join(dir, "bin", "python")
	mu, _ := pyEnvLocks.LoadOrStore(dir, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := os.Stat(filepath.Join(dir, pyEnvComplete)); err == nil {
		return python, nil
	}
	if err := ws.createPythonEnv(ctx, env, dir, reqs); err != nil {
		return "", err
	}
	return python, nil
}

// pyEnvComplete marks a realised environment.
const pyEnvComplete = "aksml-environment-complete"

func (ws *Workspace) createPythonEnv(ctx context.Context, env *Environment, dir string, reqs []string) error {
	base := SystemPython
	if _, err := os.Stat(base); err != nil {
		if base, err = exec.LookPath("python3"); err != nil {
			return errcode.Errorf(errcode.FailedPrecondition,
				"environment %s: its conda dependencies need a Python to create a virtual environment from, and neither %s nor python3 on PATH exists; install Python 3 (Debian: apt-get install python3 python3-venv python3-pip)", envName(env), SystemPython)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := dir + ".tmp-" + hex.EncodeToString(rnd[:])
	defer os.RemoveAll(tmp)
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1", "PYTHONDONTWRITEBYTECODE=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ctx.Err() != nil {
			return out.String(), errcode.Wrap(errcode.DeadlineExceeded, ctx.Err())
		}
		return out.String(), err
	}
	// --without-pip: the base's own pip (visible through the system site
	// packages) installs into the environment; ensurepip would take far
	// longer.
	if out, err := run(base, "-m", "venv", "--system-site-packages", "--without-pip", tmp); err != nil {
		if errcode.Of(err) == errcode.DeadlineExceeded {
			return err
		}
		return errcode.Errorf(errcode.FailedPrecondition,
			"environment %s: %s -m venv could not create its virtual environment (%v): %s; install the venv module (Debian: apt-get install python3-venv)", envName(env), base, err, lastLines(out, 5))
	}
	python := filepath.Join(tmp, "bin", "python")
	reqFile := filepath.Join(tmp, "aksml-requirements.txt")
	if err := os.WriteFile(reqFile, []byte(strings.Join(reqs, "\n")+"\n"), 0o644); err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	if out, err := run(python, "-m", "pip", "install", "-r", reqFile); err != nil {
		if errcode.Of(err) == errcode.DeadlineExceeded {
			return err
		}
		return pipError(env, base, filepath.Join(dir, "bin", "python"), reqs, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, pyEnvComplete), nil, 0o644); err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, pyEnvComplete)); serr == nil {
			return nil // another process realised it meanwhile
		}
		os.RemoveAll(dir) // an incomplete leftover
		if err := os.Rename(tmp, dir); err != nil {
			return errcode.Wrap(errcode.Internal, err)
		}
	}
	return nil
}

var (
	pipNoMatch  = regexp.MustCompile(`(?m)No matching distribution found for (\S+)`)
	pipNoModule = regexp.MustCompile(`(?m)No module named pip`)
)

// pipError turns pip's failure into an error naming the package, the
// interpreter and the fix.
func pipError(env *Environment, base, python string, reqs []string, out string) error {
	if pipNoModule.MatchString(out) {
		return errcode.Errorf(errcode.FailedPrecondition,
			"environment %s: %s has no pip to install the conda file's dependencies with; install it (Debian: apt-get install python3-pip)", envName(env), base)
	}
	if m := pipNoMatch.FindStringSubmatch(out); m != nil {
		name := packageName(m[1])
		return errcode.Errorf(errcode.FailedPrecondition,
			"environment %s: package %s could not be installed for interpreter %s (a virtual environment over %s): pip found no distribution of %s. "+
				"Fix: make it reachable to pip (a package index, or --find-links DIR in the conda file's pip list), install it for %s (Debian: apt-get install python3-%s), "+
				"pin a version that is available, or set python.user_managed_dependencies with python.interpreter_path naming an interpreter that has it.\npip said: %s",
			envName(env), m[1], python, base, name, base, strings.ToLower(name), lastLines(out, 3))
	}
	return errcode.Errorf(errcode.FailedPrecondition,
		"environment %s: pip of %s could not install %s: %s. Fix the conda file's dependencies, or set python.user_managed_dependencies with python.interpreter_path naming an interpreter that has them",
		envName(env), base, strings.Join(reqs, " "), lastLines(out, 8))
}

func envName(env *Environment) string {
	if env.Name == "" {
		return "(unnamed)"
	}
	if env.Version > 0 {
		return fmt.Sprintf("%s:%d", env.Name, env.Version)
	}
	return env.Name
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// condaToPip names the pip distributions of conda packages whose names
// differ.
var condaToPip = map[string]string{
	"pytorch":     "torch",
	"py-xgboost":  "xgboost",
	"pytorch-cpu": "torch",
}

// pipRequirements turns a conda file's dependencies into lines of a pip
// requirements file: the conda dependencies first (without python and pip),
// then the pip list as it is.
func pipRequirements(c *CondaDependencies) []string {
	var out []string
	for _, dep := range c.Dependencies {
		dep = strings.TrimSpace(dep)
		if i := strings.LastIndex(dep, "::"); i >= 0 {
			dep = dep[i+2:]
		}
		name := packageName(dep)
		rest := strings.TrimSpace(dep[len(name):])
		switch strings.ToLower(name) {
		case "", "python", "pip":
			continue
		}
		if p, ok := condaToPip[strings.ToLower(name)]; ok {
			name = p
		}
		if v, ok := strings.CutPrefix(rest, "="); ok && !strings.HasPrefix(v, "=") {
			// conda's name=1.2 matches 1.2, 1.2.x: pip's ==1.2.*; a build
			// string (name=1.2=py38_0) is dropped.
			v, _, _ = strings.Cut(v, "=")
			rest = "==" + v
			if !strings.Contains(v, "*") {
				rest += ".*"
			}
		} else if rest != "" && !strings.ContainsAny(rest[:1], "=<>!~") {
			rest = "==" + strings.Fields(rest)[0] // "name 1.2"
		}
		out = append(out, name+rest)
	}
	for _, p := range c.PipPackages {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}
