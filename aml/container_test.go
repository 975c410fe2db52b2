package aml_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	"github.com/aksml/aksml/image/docker"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// inProcessTwin is what the gomodel binary runs, for the inference
// config's validation; the replicas run the binary in containers.
type inProcessTwin struct{}

func (inProcessTwin) Init(ctx context.Context, dir string) error         { return nil }
func (inProcessTwin) Run(ctx context.Context, in []byte) ([]byte, error) { return in, nil }

// TestIntegrationContainerReplicas builds a FROM scratch image holding a
// static Go model binary through the Docker Engine API, runs the service's
// replicas as containers and scores them through the simulator's front-end;
// a second service with the same environment builds nothing.
func TestIntegrationContainerReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "gomodel")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./testdata/gomodel")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the model binary: %v\n%s", err, out)
	}
	engine, err := docker.NewEngine(ctx, nil)
	if err != nil {
		t.Fatalf("this test needs the Docker engine: %v", err)
	}
	repo := "aksml-test/container-replicas-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	cache := image.NewCache(image.CacheOptions{Workspace: &docker.EngineStore{Engine: engine, Repository: repo}, Builder: engine})

	ws, err := aml.Open(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	sim := simulator.New(&simulator.Options{Engine: engine})
	defer sim.Close()
	target, err := compute.Create(ctx, ws, "aks-ctr", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		t.Fatal(err)
	}
	mpath := filepath.Join(t.TempDir(), "weights.bin")
	os.WriteFile(mpath, []byte("w"), 0o644)
	model, err := ws.RegisterModel(ctx, "weights", mpath, nil)
	if err != nil {
		t.Fatal(err)
	}
	ic := &aml.InferenceConfig{Handler: func() scoring.Handler { return inProcessTwin{} }}
	opts := &aml.DeployOptions{Image: &aml.ImageOptions{Cache: cache, ScoreBinary: bin, BaseImage: "scratch"}}
	dc := webservice.DeployConfig{NumReplicas: 1, AuthEnabled: new(false)}

	start := time.Now()
	svc, err := aml.Deploy(ctx, ws, "in-a-box", []*aml.Model{model}, ic, dc, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	cold := time.Since(start)
	spec, _, err := aml.ImageSpec(ctx, ic, opts.Image)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := spec.Digest()
	ref, _ := spec.Ref()
	t.Cleanup(func() {
		// Remove the image this test built, under both of its tags.
		engine.RemoveImage(context.Background(), image.RefFor(repo, d))
		engine.RemoveImage(context.Background(), ref)
	})
	out, err := svc.Run(ctx, `{"x":1}`)
	if err != nil {
		t.Fatal(err)
	}
	// The answer comes from the container: AML_APP_ROOT is set by the
	// image, and the model is mounted at azureml-models/weights/1.
	if !strings.Contains(string(out), `"appRoot":"/var/azureml-app"`) || !strings.Contains(string(out), `"modelFiles":["weights.bin"]`) {
		t.Fatalf("answer %s does not come from the container with the mounted model", out)
	}
	if st := cache.Stats(); st.Builds != 1 {
		t.Errorf("builds after the first deployment: %+v, want 1", st)
	}
	start = time.Now()
	svc2, err := aml.Deploy(ctx, ws, "in-a-box-two", []*aml.Model{model}, ic, dc, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.WaitForDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	if st := cache.Stats(); st.Builds != 1 {
		t.Errorf("a second service with the same environment built again: %+v", st)
	}
	t.Logf("deploy to healthy: cold (build) %v, cache hit %v", cold, warm)
	if err := svc.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc2.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// Without an engine a container deployment fails with a clear error.
func TestContainerReplicaWithoutEngine(t *testing.T) {
	ctx := testCtx(t)
	e := newDeployEnv(t, compute.ProvisioningConfig{ClusterPurpose: compute.DevTest})
	_, err := aml.Deploy(ctx, e.ws, "no-engine", nil, &aml.InferenceConfig{Handler: func() scoring.Handler { return inProcessTwin{} }},
		webservice.DeployConfig{NumReplicas: 1}, e.target, &aml.DeployOptions{Image: &aml.ImageOptions{}})
	if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), "Cache and ScoreBinary are required") {
		t.Errorf("image options without a cache: %v", err)
	}
}
