// Package iris is the job examples/quickstart and examples/localcluster
// run, each on its own cluster: the README's main job (register a model,
// create a target, deploy, score, rotate a key) written once.
package iris

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/webservice"
)

// assets is examples/quickstart, where the model and score.py live.
func assets() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "quickstart")
}

// Run registers the quickstart's iris model in a workspace at workdir (a
// fresh temporary one when empty), creates a dev-test AKS target on
// provider, deploys the model with key auth behind the quickstart's
// score.py, scores three flowers, regenerates the primary key and shows the
// old one refused, then shows a deployed model cannot be deleted. It writes
// eight lines to out and deletes the service and the target it created.
func Run(ctx context.Context, out io.Writer, workdir string, provider driver.Provider) error {
	if workdir == "" {
		dir, err := os.MkdirTemp("", "aksml-quickstart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		workdir = dir
	}
	ws, err := aml.Open(ctx, workdir, nil)
	if err != nil {
		return err
	}
	defer ws.Close()

	// Model.register
	model, err := ws.RegisterModel(ctx, "iris-classifier", filepath.Join(assets(), "model", "iris.json"), &aml.RegisterModelOptions{
		Framework:   aml.FrameworkScikitLearn,
		Description: "Multinomial logistic regression on the iris data set",
		Tags:        map[string]string{"dataset": "iris"},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "registered model %s (%s)\n", model.ID(), model.Digest)

	// AksCompute.create on the provider's cluster.
	target, err := compute.Create(ctx, ws, "aks-dev", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, VMSize: "Standard_D3_v2"},
		&compute.CreateOptions{Provider: provider, Progress: out})
	if err != nil {
		return err
	}
	defer func() { _ = target.Delete(context.WithoutCancel(ctx)) }()
	if err := target.Wait(ctx); err != nil {
		return err
	}

	// Model.deploy with an InferenceConfig and AksWebservice.deploy_configuration.
	ic := &aml.InferenceConfig{EntryScript: "score.py", SourceDirectory: filepath.Join(assets(), "src")}
	dc := webservice.DeployConfig{CPUCores: 0.5, MemoryGB: 1, AuthEnabled: new(true), NumReplicas: 1}
	svc, err := aml.Deploy(ctx, ws, "iris-svc", []*aml.Model{model}, ic, dc, target, nil)
	if err != nil {
		return err
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		return err
	}
	state, err := svc.State(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "service %s: %s\n", svc.Name(), state)
	fmt.Fprintf(out, "scoring URI: %s\n", svc.ScoringURI())

	input := `{"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}`
	pred, err := svc.Run(ctx, input)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "predictions: %s\n", pred)

	// regen_key: the old primary key stops working at once.
	oldKey, _, err := svc.Keys(ctx)
	if err != nil {
		return err
	}
	if err := svc.RegenKey(ctx, webservice.Primary, ""); err != nil {
		return err
	}
	code, err := postWithKey(ctx, svc.ScoringURI(), oldKey, input)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "old primary key after regen_key: HTTP %d\n", code)
	if _, err := svc.Run(ctx, input); err != nil {
		return fmt.Errorf("the new key does not work: %w", err)
	}
	fmt.Fprintln(out, "new primary key: HTTP 200")

	// A model in use cannot be deleted.
	if err := ws.DeleteModel(ctx, model.ID()); errors.Is(err, errcode.FailedPrecondition) {
		fmt.Fprintf(out, "deleting %s while deployed: refused\n", model.ID())
	} else {
		return fmt.Errorf("deleting a deployed model: got %v, want FailedPrecondition", err)
	}
	return svc.Delete(ctx)
}

func postWithKey(ctx context.Context, uri, key, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
