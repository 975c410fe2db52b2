package aml

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/webservice"
)

// MaxModelsPerDeployment is how many models one service may serve (AKS's
// documented limit).
const MaxModelsPerDeployment = 1000

// DeployOptions are the options of Deploy.
type DeployOptions struct {
	// Overwrite updates an existing service of the same name instead of
	// failing with AlreadyExists (az ml model deploy --overwrite).
	Overwrite bool
	// Progress receives show_output-style lines while the service is
	// waited on; nil prints nothing.
	Progress io.Writer
	// Image, when set, builds (or reuses) a container image for the
	// deployment and runs its replicas from it (the simulator needs
	// simulator.Options.Engine for that).
	Image *ImageOptions
}

// Deploy deploys models as web service name on target (Model.deploy). It
// validates everything first — the service name, every deploy-config rule,
// the inference config, at most 1000 models that exist in ws — and reports
// every problem in one error. It then lays out the models as
// AZUREML_MODEL_DIR expects and returns the service at once, in state
// Transitioning; call WaitForDeployment.
func Deploy(ctx context.Context, ws *Workspace, name string, models []*Model, ic *InferenceConfig, dc webservice.DeployConfig, target *compute.Target, opts *DeployOptions) (*webservice.Service, error) {
	if opts == nil {
		opts = &DeployOptions{}
	}
	rt, err := Runtime(ctx, ws, name, models, ic)
	err = errors.Join(webservice.ValidateName(name), dc.Validate(), err)
	if target == nil {
		err = errors.Join(err, errcode.New(errcode.InvalidArgument, "deployment_target: a compute target is required"))
	}
	if err != nil {
		return nil, err
	}
	if opts.Image != nil {
		if rt, err = withImage(ctx, ic, rt, opts.Image); err != nil {
			return nil, err
		}
	}
	if opts.Overwrite {
		if svc, gerr := webservice.Get(ctx, target, name); gerr == nil {
			if err := svc.Update(ctx, webservice.UpdateOptions{Config: &dc, Runtime: &rt}); err != nil {
				return nil, err
			}
			return svc, nil
		}
	}
	return webservice.Deploy(ctx, target, name, dc, rt, &webservice.DeployOptions{Progress: opts.Progress})
}

// Runtime validates models and ic and lays out what a service's replicas
// run: the models under azureml-models/NAME/VERSION in the workspace
// (read-only copies of the blob store's files, so a replica that writes to
// its model files cannot damage the store), the entry script or Go handler, the source
// directory, the environment's interpreter and variables. Endpoint versions
// use it too. The name only labels the layout's directory.
func Runtime(ctx context.Context, ws *Workspace, name string, models []*Model, ic *InferenceConfig) (webservice.Runtime, error) {
	var errs []error
	switch {
	case ic == nil:
		errs = append(errs, errcode.New(errcode.InvalidArgument,
			"inference_config: required; aksml does not do no-code deployment, give an entry script or a Go handler"))
	default:
		if err := ic.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(models) > MaxModelsPerDeployment {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument,
			"models: %d models given, at most %d may be deployed in one service", len(models), MaxModelsPerDeployment))
	}
	seen := map[string]bool{}
	var ids []string
	h := sha256.New()
	for i, m := range models {
		if m == nil {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "models[%d]: nil model", i))
			continue
		}
		id := m.ID()
		if seen[id] {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "models[%d]: model %s is listed twice", i, id))
			continue
		}
		seen[id] = true
		ids = append(ids, id)
		fmt.Fprintf(h, "model %s %s\n", id, m.Digest)
	}
	if len(errs) > 0 {
		return webservice.Runtime{}, errors.Join(errs...)
	}
	// Check the models exist in this workspace, with the content given.
	for i, m := range models {
		stored, err := ws.ModelByID(ctx, m.ID())
		if err != nil {
			errs = append(errs, fmt.Errorf("models[%d]: %w", i, err))
		} else if stored.Digest != m.Digest {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "models[%d]: model %s has digest %s in the workspace, not %s", i, m.ID(), stored.Digest, m.Digest))
		}
	}
	if len(errs) > 0 {
		return webservice.Runtime{}, errors.Join(errs...)
	}

	// Collected model data (collect_model_data) and request telemetry
	// (enable_app_insights) go to the workspace.
	t := driver.ReplicaTemplate{Handler: ic.Handler, ModelDataDir: ws.Dir()}
	if ic.Handler == nil {
		script, err := filepath.Abs(ic.EntryScriptPath())
		if err != nil {
			return webservice.Runtime{}, errcode.Wrap(errcode.InvalidArgument, err)
		}
		t.EntryScript = script
		t.SourceDir = filepath.Dir(script)
		if ic.SourceDirectory != "" {
			if t.SourceDir, err = filepath.Abs(ic.SourceDirectory); err != nil {
				return webservice.Runtime{}, errcode.Wrap(errcode.InvalidArgument, err)
			}
		}
		// Parse it as the SDK does (ast.parse) when the interpreter is
		// here; a remote backend may deploy from a machine without one.
		if py := interpreterOf(ic); py != "" {
			if err := ic.CheckEntryScriptSyntax(ctx, py); err != nil {
				return webservice.Runtime{}, err
			}
		}
		content, err := os.ReadFile(script)
		if err != nil {
			return webservice.Runtime{}, errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("entry_script: %w", err))
		}
		fmt.Fprintf(h, "script %s %x\n", script, sha256.Sum256(content))
	}
	if env := ic.Environment; env != nil {
		if ic.Handler == nil {
			// The environment's Python: a virtual environment with the
			// conda file's packages, or the interpreter it names.
			py, err := ws.PythonEnvironment(ctx, env)
			if err != nil {
				return webservice.Runtime{}, err
			}
			if py != DefaultInterpreter {
				t.Interpreter = py
			}
		}
		t.Env = maps.Clone(env.EnvironmentVariables)
		for _, k := range slices.Sorted(maps.Keys(t.Env)) {
			fmt.Fprintf(h, "env %s=%s\n", k, t.Env[k])
		}
		fmt.Fprintf(h, "interpreter %s\n", t.Interpreter)
	}
	t.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))

	// Lay the models out once per distinct content; redeploying the same
	// content reuses the layout unless a replica changed it.
	if len(models) > 0 {
		root := filepath.Join(ws.Dir(), "deployments", name, t.Digest[len("sha256:"):len("sha256:")+16])
		done := filepath.Join(root, "layout-complete")
		dir := filepath.Join(root, "azureml-models")
		if len(models) == 1 {
			dir = filepath.Join(dir, models[0].Name, strconv.Itoa(models[0].Version))
		}
		if !layoutIntact(root, done) {
			if err := os.RemoveAll(root); err != nil {
				return webservice.Runtime{}, errcode.Wrap(errcode.Internal, err)
			}
			var err error
			if dir, err = ws.MaterializeModels(ctx, ids, root, &DownloadOptions{ReadOnly: true}); err != nil {
				return webservice.Runtime{}, fmt.Errorf("lay out models: %w", err)
			}
			manifest, err := layoutManifest(root)
			if err == nil {
				err = os.WriteFile(done, manifest, 0o600)
			}
			if err != nil {
				return webservice.Runtime{}, errcode.Wrap(errcode.Internal, err)
			}
		}
		t.ModelDir = dir
		for _, m := range models {
			t.Models = append(t.Models, driver.ModelRef{Name: m.Name, Version: m.Version, Digest: string(m.Digest)})
		}
	}
	return webservice.Runtime{Template: t, ModelIDs: ids}, nil
}

// interpreterOf returns the Python that will run ic's entry script, if it
// can be found on this machine, or "".
func interpreterOf(ic *InferenceConfig) string {
	py := "python3"
	if env := ic.Environment; env != nil && env.Python.InterpreterPath != "" {
		py = env.Python.InterpreterPath
	}
	if p, err := exec.LookPath(py); err == nil {
		return p
	}
	return ""
}

// layoutManifest lists every file under root's azureml-models with its
// size and modification time, one per line.
func layoutManifest(root string) ([]byte, error) {
	var b []byte
	err := filepath.WalkDir(filepath.Join(root, "azureml-models"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b = fmt.Appendf(b, "%q %d %d\n", rel, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return b, err
}

// layoutIntact reports whether the layout under root is complete and
// unchanged since it was written (no replica wrote to a model file).
func layoutIntact(root, done string) bool {
	want, err := os.ReadFile(done)
	if err != nil || len(want) == 0 {
		return false
	}
	got, err := layoutManifest(root)
	return err == nil && bytes.Equal(got, want)
}

// UpdateService rolls svc onto new models and inference config, as the
// SDK's service.update(models=…, inference_config=…) does: it lays out the
// models with Runtime and calls svc.Update with the new runtime and, when
// dc is not nil, the deploy-config fields to change. It returns at once;
// call svc.WaitForDeployment.
func UpdateService(ctx context.Context, ws *Workspace, svc *webservice.Service, models []*Model, ic *InferenceConfig, dc *webservice.DeployConfig) error {
	rt, err := Runtime(ctx, ws, svc.Name(), models, ic)
	if err != nil {
		return err
	}
	return svc.Update(ctx, webservice.UpdateOptions{Runtime: &rt, Config: dc})
}
