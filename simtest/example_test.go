package simtest_test

import (
	"context"
	"testing"

	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simtest"
)

// A unit test of a Go handler against the simulator: one call for the
// environment, one for the deployment; cleanup and leak checks come with
// them. (Compiled, not run: an example has no *testing.T.)
func ExampleNew() {
	_ = func(t *testing.T) {
		env := simtest.New(t, nil)
		svc := env.DeployHandler("echo", func() scoring.Handler {
			return scoring.HandlerFunc(func(_ context.Context, in []byte) ([]byte, error) { return in, nil })
		})
		out, err := svc.Run(env.Ctx, `{"data": [1, 2]}`)
		if err != nil || string(out) != `{"data": [1, 2]}` {
			t.Errorf("Run = %s, %v", out, err)
		}
	}
}

// A score.py directory deploys in one line too; a registered model lands
// under AZUREML_MODEL_DIR. (Compiled, not run.)
func ExampleEnv_DeployScript() {
	_ = func(t *testing.T) {
		env := simtest.New(t, nil)
		model := env.RegisterModel("iris", "testdata/model/iris.json")
		svc := env.DeployScript("iris", "testdata/src", "score.py", model)
		if _, err := svc.Run(env.Ctx, `{"data": [[5.1, 3.5, 1.4, 0.2]]}`); err != nil {
			t.Error(err)
		}
	}
}
