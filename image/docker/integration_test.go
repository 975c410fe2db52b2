package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	"github.com/aksml/aksml/internal/treetest"
	"github.com/opencontainers/go-digest"
)

var (
	scorerOnce sync.Once
	scorerDir  string
	scorerPath string
	scorerErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if scorerDir != "" {
		os.RemoveAll(scorerDir)
	}
	os.Exit(code)
}

// scorerBinary compiles testdata/scorer as a static binary, once per run:
// the stand-in for aksml-score in FROM scratch images.
func scorerBinary(t *testing.T) string {
	t.Helper()
	scorerOnce.Do(func() {
		scorerDir, scorerErr = os.MkdirTemp("", "aksml-image-scorer-")
		if scorerErr != nil {
			return
		}
		scorerPath = filepath.Join(scorerDir, "aksml-score")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		cmd := exec.Command(goTool, "build", "-ldflags=-s -w", "-o", scorerPath, "./testdata/scorer")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			scorerErr = fmt.Errorf("building testdata/scorer: %v\n%s", err, out)
		}
	})
	if scorerErr != nil {
		t.Fatal(scorerErr)
	}
	return scorerPath
}

// testEngine connects to the machine's Docker engine; integration tests
// need one (skipped only under -short).
func testEngine(t *testing.T) *Engine {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs a Docker engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := NewEngine(ctx, nil)
	if err != nil {
		t.Fatalf("a Docker engine is required for this test: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// uniqueRepo returns a repository name no other test run uses.
func uniqueRepo(t *testing.T, kind string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "aksml-test-" + hex.EncodeToString(b) + "/" + kind
}

// removeImagesAtEnd removes the references (and so the images) when the
// test ends.
func removeImagesAtEnd(t *testing.T, e *Engine, refs ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, r := range refs {
			if err := e.RemoveImage(ctx, r); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// countingBuilder counts the builds that reach the engine.
type countingBuilder struct {
	b image.Builder
	n atomic.Int64
}

func (c *countingBuilder) Build(ctx context.Context, r io.Reader, opts *image.BuildOptions) (*image.BuildResult, error) {
	c.n.Add(1)
	return c.b.Build(ctx, r, opts)
}

// waitHealthy polls the container's liveness route until it answers.
func waitHealthy(t *testing.T, c *Container) {
	t.Helper()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(c.URL() + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "Healthy" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s at %s never answered GET /: %v", short(c.ID), c.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIntegrationBuildRunScoreAndReuse(t *testing.T) {
	e := testEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := scorerBinary(t)

	srcDir := filepath.Join(t.TempDir(), "my_project")
	treetest.Write(t, srcDir, map[string]string{
		"score.py":        "def init(): pass\ndef run(raw): return raw\n",
		"extradata.json":  `{"extra": true}`,
		".amlignore":      "secrets/\n*.ipynb\n",
		"secrets/key.txt": "do not ship",
		"notebook.ipynb":  "{}",
		"lib/__init__.py": "",
	}, nil)
	modelDir := t.TempDir()
	treetest.Write(t, modelDir, map[string]string{"model.txt": "iris weights v1"}, nil)

	repo := uniqueRepo(t, "env")
	builder := &countingBuilder{b: e}
	var cold, hit, hitFresh, hitWithPackaging time.Duration

	makeSpec := func(name, version string) (*image.Spec, *image.ContextInputs) {
		src, err := image.PackageSource(ctx, srcDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if src.Has("secrets/key.txt") || src.Has("notebook.ipynb") {
			t.Fatalf(".amlignore not honoured: %v", src.Files)
		}
		binDigest, err := image.FileDigest(bin)
		if err != nil {
			t.Fatal(err)
		}
		return &image.Spec{
			Name: name, Version: version,
			BaseImage:            "scratch",
			EntryScript:          "score.py",
			Source:               src.Digest,
			SourceName:           filepath.Base(srcDir),
			ScoreBinary:          binDigest,
			ScoreArgs:            []string{"--port", "5001"},
			EnvironmentVariables: map[string]string{"GREETING": `hello "world" $HOME \o/`},
		}, &image.ContextInputs{Source: src, ScoreBinary: bin}
	}

	spec, inputs := makeSpec("env-a", "1")
	ref := image.RefFor(repo, mustDigest(t, spec))
	removeImagesAtEnd(t, e, ref)

	cache := image.NewCache(image.CacheOptions{Workspace: &EngineStore{Engine: e, Repository: repo}, Builder: builder})
	var progress strings.Builder
	res, err := cache.Ensure(ctx, spec, &image.EnsureOptions{Inputs: inputs, Progress: &progress})
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	cold = res.Duration
	if !res.Built || res.From != image.FromBuild || res.Ref != ref {
		t.Fatalf("first Ensure = %+v, want a build tagged %s", res, ref)
	}
	if !strings.Contains(progress.String(), "Step 1/") {
		t.Errorf("build log not streamed to progress: %q", progress.String())
	}

	// The same content again, through the same cache, a fresh cache, and
	// under another environment name and version: nothing is built.
	res, err = cache.Ensure(ctx, spec, &image.EnsureOptions{Inputs: inputs})
	if err != nil || res.Built || res.From != image.FromWorkspace || res.Ref != ref {
		t.Fatalf("second Ensure = %+v, %v; want a workspace hit", res, err)
	}
	hit = res.Duration
	fresh := image.NewCache(image.CacheOptions{Workspace: &EngineStore{Engine: e, Repository: repo}, Builder: builder})
	res, err = fresh.Ensure(ctx, spec, nil)
	if err != nil || res.Built {
		t.Fatalf("fresh cache Ensure = %+v, %v", res, err)
	}
	hitFresh = res.Duration
	start := time.Now()
	renamed, renamedInputs := makeSpec("env-b", "7")
	res, err = fresh.Ensure(ctx, renamed, &image.EnsureOptions{Inputs: renamedInputs})
	hitWithPackaging = time.Since(start)
	if err != nil || res.Built || res.Ref != ref {
		t.Fatalf("renamed environment Ensure = %+v, %v", res, err)
	}
	if n := builder.n.Load(); n != 1 {
		t.Fatalf("engine builds = %d, want 1", n)
	}
	if st := cache.Stats(); st.Builds != 1 || st.WorkspaceHits != 1 {
		t.Fatalf("cache stats %+v", st)
	}
	t.Logf("engine %s, API version %s", e.Host(), e.APIVersion())
	t.Logf("TIMING cold_build=%v cache_hit=%v cache_hit_fresh_cache=%v cache_hit_with_packaging=%v ratio_cold_over_hit=%.0f",
		cold.Round(time.Millisecond), hit.Round(time.Microsecond), hitFresh.Round(time.Microsecond),
		hitWithPackaging.Round(time.Microsecond), float64(cold)/float64(hit))

	// Run it as a replica would run, with the model mounted read-only.
	models := []image.Model{{Name: "iris", Version: 1}}
	c, err := RunContainer(ctx, e, ref, &image.RunOptions{
		Env:    map[string]string{image.EnvModelDir: image.ModelDir(models)},
		Mounts: []image.Mount{{Source: modelDir, Target: image.ModelsRoot + "/iris/1", ReadOnly: true}},
		Labels: map[string]string{"io.aksml.test": t.Name()},
	})
	if err != nil {
		t.Fatalf("RunContainer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Remove(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if !strings.HasPrefix(c.Addr, "127.0.0.1:") {
		t.Fatalf("container address %q is not on 127.0.0.1", c.Addr)
	}
	waitHealthy(t, c)

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Post(c.URL()+"/score", "application/json", strings.NewReader(`{"data":[[1,2,3,4]]}`))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"input":    `{"data":[[1,2,3,4]]}`,
		"entry":    "my_project/score.py",
		"cwd":      image.AppRoot,
		"script":   "def init(): pass\ndef run(raw): return raw\n",
		"model":    "iris weights v1",
		"greeting": `hello "world" $HOME \o/`,
		"args":     "[--port 5001]",
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("score %s = %q, want %q", k, out[k], v)
		}
	}

	// Azure ML's layout: the working directory is the app root, which
	// holds the source directory under its own name and nothing flat.
	for p, want := range map[string]string{"./my_project/extradata.json": `{"extra": true}`, "./extradata.json": "", "./score.py": ""} {
		resp, err := hc.Get(c.URL() + "/open?path=" + url.QueryEscape(p))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case want != "" && (resp.StatusCode != 200 || string(b) != want):
			t.Errorf("open %s in the container: %d %q, want %q", p, resp.StatusCode, b, want)
		case want == "" && resp.StatusCode != 404:
			t.Errorf("open %s in the container: %d %q, want 404 (the source is not laid flat in the app root)", p, resp.StatusCode, b)
		}
	}

	logs, err := c.Logs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(logs)
	logs.Close()
	if err != nil || !strings.Contains(string(b), "scorer listening on :5001") {
		t.Errorf("logs = %q, %v", b, err)
	}
	st, err := c.State(ctx)
	if err != nil || !st.Running {
		t.Fatalf("state %+v, %v", st, err)
	}
	if err := c.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err = c.State(ctx)
	if err != nil || st.Running || st.Status != "exited" {
		t.Fatalf("after Stop: state %+v, %v", st, err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.State(ctx); !errors.Is(err, errcode.NotFound) {
		t.Fatalf("state after Remove: %v", err)
	}
}

// tinySpec is a FROM scratch spec that builds in well under a second.
func tinySpec(marker string) *image.Spec {
	return &image.Spec{BaseImage: "scratch", EnvironmentVariables: map[string]string{"MARKER": marker}}
}

func TestIntegrationGlobalStoreAndConcurrentEnsure(t *testing.T) {
	t.Parallel()
	e := testEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	workspaceRepo, globalRepo := uniqueRepo(t, "ws"), uniqueRepo(t, "global")

	// Two concurrent deployments of one environment share one build.
	spec := tinySpec(t.Name())
	d := mustDigest(t, spec)
	removeImagesAtEnd(t, e, image.RefFor(globalRepo, d))
	builder := &countingBuilder{b: e}
	seed := image.NewCache(image.CacheOptions{Workspace: &EngineStore{Engine: e, Repository: globalRepo}, Builder: builder})
	ops := []*image.EnsureOperation{seed.BeginEnsure(ctx, spec, nil), seed.BeginEnsure(ctx, spec, nil)}
	built := 0
	for _, op := range ops {
		res, err := op.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Built {
			built++
		}
		if !op.Done() {
			t.Fatal("Done is false after Wait")
		}
	}
	if built != 1 || builder.n.Load() != 1 {
		t.Fatalf("concurrent Ensure: %d results built, %d engine builds; want 1 and 1", built, builder.n.Load())
	}

	// A workspace that lacks the image uses the global store's.
	cache := image.NewCache(image.CacheOptions{
		Workspace: &EngineStore{Engine: e, Repository: workspaceRepo},
		Global:    &EngineStore{Engine: e, Repository: globalRepo},
		Builder:   builder,
	})
	res, err := cache.Ensure(ctx, spec, nil)
	if err != nil || res.Built || res.From != image.FromGlobal || res.Ref != image.RefFor(globalRepo, d) {
		t.Fatalf("Ensure = %+v, %v; want a global hit", res, err)
	}
	if st := cache.Stats(); st.GlobalHits != 1 || st.Builds != 0 || builder.n.Load() != 1 {
		t.Fatalf("stats %+v, engine builds %d", st, builder.n.Load())
	}

	// An unreachable global registry counts as a miss: the build goes on.
	other := tinySpec(t.Name() + "-other")
	removeImagesAtEnd(t, e, image.RefFor(workspaceRepo, mustDigest(t, other)))
	cache = image.NewCache(image.CacheOptions{
		Workspace: &EngineStore{Engine: e, Repository: workspaceRepo},
		Global:    &RegistryStore{Engine: e, Repository: "127.0.0.1:1/aksml/env"},
		Builder:   builder,
	})
	var lines strings.Builder
	res, err = cache.Ensure(ctx, other, &image.EnsureOptions{Progress: &lines})
	if err != nil || !res.Built {
		t.Fatalf("Ensure with unreachable global store = %+v, %v", res, err)
	}
	if !strings.Contains(lines.String(), "global image store unavailable") {
		t.Errorf("progress does not say the global store was unavailable: %q", lines.String())
	}

	// Registries that cannot be reached are errcode.Unavailable, naming
	// the registry.
	od := mustDigest(t, other)
	regRepo := "127.0.0.1:1/" + workspaceRepo + "-reg"
	removeImagesAtEnd(t, e, image.RefFor(regRepo, od), "127.0.0.1:1/"+res.Ref)
	reg := &RegistryStore{Engine: e, Repository: regRepo}
	if _, err := reg.Lookup(ctx, od); !errors.Is(err, errcode.Unavailable) {
		t.Errorf("registry Lookup: %v, want Unavailable", err)
	}
	if _, err := reg.Record(ctx, od, res.Ref); !errors.Is(err, errcode.Unavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("registry Record: %v, want Unavailable naming the registry", err)
	}
	push := &RegistryPusher{Engine: e, Registry: "127.0.0.1:1"}
	if _, err := push.Distribute(ctx, res.Ref); !errors.Is(err, errcode.Unavailable) {
		t.Errorf("push: %v, want Unavailable", err)
	}
}

func TestIntegrationBrokenStepNamesTheStep(t *testing.T) {
	t.Parallel()
	e := testEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel) // the subtests run after this function returns
	repo := uniqueRepo(t, "broken")
	tests := []struct {
		name, steps, instruction, msg string
	}{
		{"RUN of a missing program", "RUN /nonexistent", "RUN /nonexistent", ""},
		{"COPY of a missing file", "COPY missing.txt /missing.txt", "COPY missing.txt /missing.txt", "missing.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			builder := &countingBuilder{b: e}
			cache := image.NewCache(image.CacheOptions{Workspace: &EngineStore{Engine: e, Repository: repo}, Builder: builder})
			spec := &image.Spec{BaseImage: "scratch", DockerSteps: "WORKDIR /app\n" + tt.steps}
			_, err := cache.Ensure(ctx, spec, nil)
			var be *image.BuildError
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not a *image.BuildError", err)
			}
			if !errors.Is(err, image.ErrEnvironmentBuildFailed) || errcode.Of(err) != errcode.InvalidArgument {
				t.Fatalf("error %v: want EnvironmentBuildFailed and InvalidArgument", err)
			}
			if be.Instruction != tt.instruction || be.Step != 3 {
				t.Fatalf("failing step %d %q, want 3 %q\n%v", be.Step, be.Instruction, tt.instruction, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("step 3/%d %q failed", be.Steps, tt.instruction)) ||
				!strings.Contains(err.Error(), tt.msg) || len(be.LastLines) == 0 {
				t.Fatalf("message does not name the step or lacks the log:\n%v", err)
			}
			if builder.n.Load() != 1 {
				t.Fatalf("engine builds %d", builder.n.Load())
			}
			// Nothing was recorded.
			if _, err := (&EngineStore{Engine: e, Repository: repo}).Lookup(ctx, mustDigest(t, spec)); !errors.Is(err, errcode.NotFound) {
				t.Fatalf("failed build recorded: %v", err)
			}
		})
	}
}

func TestIntegrationMissingBaseImageIsNotPulled(t *testing.T) {
	t.Parallel()
	e := testEngine(t)
	builder := &countingBuilder{b: e}
	cache := image.NewCache(image.CacheOptions{Workspace: &EngineStore{Engine: e, Repository: uniqueRepo(t, "env")}, Builder: builder})
	for _, spec := range []*image.Spec{
		{BaseImage: "aksml-test-absent/base:1"},
		{BaseDockerfile: "FROM scratch AS a\nFROM aksml-test-absent/other:2\nCOPY --from=a / /"},
	} {
		var lines strings.Builder
		_, err := cache.Ensure(context.Background(), spec, &image.EnsureOptions{Progress: &lines})
		if !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "aksml-test-absent/") || !strings.Contains(err.Error(), "pulling is off") {
			t.Errorf("error %v, want FailedPrecondition naming the base image", err)
		}
		if strings.Contains(lines.String(), "Step 1/") {
			t.Errorf("the engine started the build: %q", lines.String())
		}
	}
}

func TestIntegrationRunContainerErrors(t *testing.T) {
	t.Parallel()
	e := testEngine(t)
	ctx := context.Background()
	_, err := RunContainer(ctx, e, "aksml-test-absent/image:1", nil)
	if !errors.Is(err, errcode.NotFound) {
		t.Fatalf("unknown image: %v, want NotFound", err)
	}
}

func TestRunContainerValidatesOptions(t *testing.T) {
	t.Parallel()
	_, err := RunContainer(context.Background(), nil, "x", &image.RunOptions{
		Port: 70000, HostPort: -1, CPUs: -1, MemoryBytes: -5,
		Mounts: []image.Mount{{Source: "rel", Target: "/x"}},
		Env:    map[string]string{"BAD NAME": "x"},
	})
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Fatalf("error %v", err)
	}
	for _, w := range []string{"port 70000", "host port -1", "cpus -1", "memory -5", "mount rel", `"BAD NAME"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

func TestNoEngineIsUnavailable(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"unix:///nonexistent/aksml-docker.sock", "tcp://127.0.0.1:1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e, err := NewEngine(ctx, &EngineOptions{Host: host})
		cancel()
		if err == nil {
			e.Close()
			t.Fatalf("%s: NewEngine succeeded", host)
		}
		if !errors.Is(err, errcode.Unavailable) {
			t.Errorf("%s: error %v is not Unavailable", host, err)
		}
		addr := strings.TrimPrefix(strings.TrimPrefix(host, "unix://"), "tcp://")
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "Docker engine") {
			t.Errorf("%s: message does not name the engine and address: %v", host, err)
		}
	}
}

func TestInterfaces(t *testing.T) {
	var _ image.Distributor = &RegistryPusher{}
	var _ image.Store = &EngineStore{}
	var _ image.Store = &RegistryStore{}
	var _ image.Builder = &Engine{}
}

// fakeStore and fakeBuilder exercise the cache without an engine.
type fakeStore struct {
	mu   sync.Mutex
	refs map[digest.Digest]string
	err  error
}

func (f *fakeStore) Lookup(ctx context.Context, d digest.Digest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	if r, ok := f.refs[d]; ok {
		return r, nil
	}
	return "", errcode.New(errcode.NotFound, "no image")
}

func (f *fakeStore) Record(ctx context.Context, d digest.Digest, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs == nil {
		f.refs = map[digest.Digest]string{}
	}
	f.refs[d] = image.RefFor(image.Repository, d)
	return f.refs[d], nil
}

func (f *fakeStore) String() string { return "fake" }

type fakeBuilder struct {
	n       atomic.Int64
	release chan struct{}
	err     error
}

func (f *fakeBuilder) Build(ctx context.Context, r io.Reader, opts *image.BuildOptions) (*image.BuildResult, error) {
	f.n.Add(1)
	if f.release != nil {
		<-f.release
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	return &image.BuildResult{ImageID: "sha256:fake"}, nil
}

func TestCacheWithFakes(t *testing.T) {
	t.Parallel()
	ws := &fakeStore{}
	b := &fakeBuilder{release: make(chan struct{})}
	c := image.NewCache(image.CacheOptions{Workspace: ws, Global: &fakeStore{err: errcode.New(errcode.Unavailable, "down")}, Builder: b})
	spec := tinySpec("fake")
	ops := make([]*image.EnsureOperation, 5)
	for i := range ops {
		ops[i] = c.BeginEnsure(context.Background(), spec, nil)
	}
	// Wait until the first build has started, then let it finish.
	deadline := time.Now().Add(10 * time.Second)
	for b.n.Load() == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	close(b.release)
	for _, op := range ops {
		if _, err := op.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if b.n.Load() != 1 {
		t.Fatalf("builds %d, want 1", b.n.Load())
	}
	// A failing build is returned to the caller and not recorded.
	failing := &fakeBuilder{err: &image.BuildError{Step: 1, Steps: 1, Instruction: "RUN x", Message: "boom"}}
	c = image.NewCache(image.CacheOptions{Workspace: &fakeStore{}, Builder: failing})
	if _, err := c.Ensure(context.Background(), spec, nil); !errors.Is(err, image.ErrEnvironmentBuildFailed) {
		t.Fatalf("error %v", err)
	}
	// An unavailable workspace store is an error, not a build.
	c = image.NewCache(image.CacheOptions{Workspace: &fakeStore{err: errcode.New(errcode.Unavailable, "down")}, Builder: failing})
	if _, err := c.Ensure(context.Background(), spec, nil); !errors.Is(err, errcode.Unavailable) || failing.n.Load() != 1 {
		t.Fatalf("error %v, builds %d", err, failing.n.Load())
	}
	// An invalid spec is refused before any lookup.
	if _, err := c.Ensure(context.Background(), &image.Spec{InterpreterPath: "rel"}, nil); !errors.Is(err, errcode.InvalidArgument) {
		t.Fatalf("error %v", err)
	}
	// A cancelled wait returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := image.NewCache(image.CacheOptions{Workspace: &fakeStore{}, Builder: &fakeBuilder{}})
	op := slow.BeginEnsure(context.Background(), spec, nil)
	if _, err := op.Wait(ctx); errcode.Of(err) == nil {
		t.Fatalf("cancelled Wait: %v", err)
	}
	if _, err := op.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustDigest(t *testing.T, s *image.Spec) digest.Digest {
	t.Helper()
	d, err := s.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return d
}
