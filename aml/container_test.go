package aml_test

import (
	"context"
	"errors"
	"io"
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
	"github.com/opencontainers/go-digest"
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

// noStore and noBuilder let ImageSpec run without an engine: it only
// describes the image.
type noStore struct{}

func (noStore) Lookup(context.Context, digest.Digest) (string, error) {
	return "", errcode.New(errcode.NotFound, "no image")
}
func (noStore) Record(context.Context, digest.Digest, string) (string, error) {
	return "", errcode.New(errcode.Unavailable, "read-only")
}
func (noStore) String() string { return "none" }

type noBuilder struct{}

func (noBuilder) Build(context.Context, io.Reader, *image.BuildOptions) (*image.BuildResult, error) {
	return nil, errcode.New(errcode.Unavailable, "no engine")
}

// The image holds the source directory under its own name, as the
// in-process replicas' app root does: the source directory's name, or the
// entry script's folder's when no source directory is given.
func TestImageSpecNamesTheSourceDirectory(t *testing.T) {
	ctx := testCtx(t)
	root := t.TempDir()
	src := filepath.Join(root, "my_project")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"score.py", "sub/score.py"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte("def init(): pass\ndef run(d): return d\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(root, "aksml-score")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := &aml.ImageOptions{Cache: image.NewCache(image.CacheOptions{Workspace: noStore{}, Builder: noBuilder{}}), ScoreBinary: bin}
	tests := []struct {
		ic               aml.InferenceConfig
		name, entry      string
		wantSourceHasSub bool
	}{
		{aml.InferenceConfig{EntryScript: "sub/score.py", SourceDirectory: src}, "my_project", "sub/score.py", true},
		{aml.InferenceConfig{EntryScript: filepath.Join(src, "score.py")}, "my_project", "score.py", true},
		{aml.InferenceConfig{EntryScript: filepath.Join(src, "sub", "score.py")}, "sub", "score.py", false},
	}
	for _, tt := range tests {
		spec, in, err := aml.ImageSpec(ctx, &tt.ic, opts)
		if err != nil {
			t.Fatalf("%+v: %v", tt.ic, err)
		}
		if spec.SourceName != tt.name || spec.EntryScript != tt.entry || in.Source.Has("sub/score.py") != tt.wantSourceHasSub {
			t.Errorf("%+v: SourceName %q EntryScript %q files %v; want %q, %q", tt.ic, spec.SourceName, spec.EntryScript, in.Source.Files, tt.name, tt.entry)
		}
		df, err := spec.Dockerfile()
		if err != nil {
			t.Fatal(err)
		}
		if want := `COPY ["source/","` + image.AppRoot + "/" + tt.name + `/"]`; !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s:\n%s", want, df)
		}
	}
}
