package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/aksml/aksml/image"
	"github.com/aksml/aksml/image/docker"
)

// TestIntegrationImage builds the aksml-fe image FROM scratch the way
// build-image.sh does (the script writes the context: the Dockerfile and
// the static binary) through the Docker engine of package image, then runs
// it: --help exits 0 with the flags, and with no flags outside a cluster it
// exits 1 saying the in-cluster config is missing.
func TestIntegrationImage(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs a Docker engine")
	}
	// A cold Go build cache makes the static build compile everything
	// (minutes on two cores); a warm one takes seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e, err := docker.NewEngine(ctx, nil)
	if err != nil {
		t.Fatalf("a Docker engine is required for this test: %v", err)
	}
	defer e.Close()

	dir := t.TempDir()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "sh", "build-image.sh", "--context", dir)
	cmd.Env = append(os.Environ(), "GO="+filepath.Join(runtime.GOROOT(), "bin", "go"))
	// On timeout, stop the script's go build too, not only the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh --context: %v\n%s", err, out)
	}
	staged := time.Since(start)
	buildContext := tarDir(t, dir)

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	ref := "aksml-test-" + hex.EncodeToString(b) + "/aksml-fe:test"
	start = time.Now()
	res, err := e.Build(ctx, bytes.NewReader(buildContext), &image.BuildOptions{Tags: []string{ref}})
	if err != nil {
		t.Fatal(err)
	}
	built := time.Since(start)
	t.Cleanup(func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.RemoveImage(rctx, ref); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	var cli *client.Client
	if !e.As(&cli) {
		t.Fatal("docker.Engine gives no Docker client")
	}
	ins, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := ins.Config; cfg == nil || !slices.Equal(cfg.Entrypoint, []string{"/aksml-fe"}) || cfg.User != "65532:65532" {
		t.Errorf("image config %+v, want entrypoint /aksml-fe as user 65532", ins.Config)
	}
	if len(ins.RootFS.Layers) != 1 {
		t.Errorf("image layers %v, want the binary's alone (FROM scratch)", ins.RootFS.Layers)
	}
	t.Logf("TIMING stage_context=%v (static go build) image_build=%v image_size=%.1fMB id=%s",
		staged.Round(time.Millisecond), built.Round(time.Millisecond), float64(ins.Size)/1e6, res.ImageID)

	code, logs := runOnce(ctx, t, cli, ref, "--help")
	if code != 0 || !strings.Contains(logs, "Usage of aksml-fe") || !strings.Contains(logs, "-token-namespace") {
		t.Errorf("--help: exit %d, output %q; want 0 and the flags", code, logs)
	}
	code, logs = runOnce(ctx, t, cli, ref)
	if code != 1 || !strings.Contains(logs, "aksml-fe: unable to load in-cluster configuration") || !strings.Contains(logs, "KUBERNETES_SERVICE_HOST") {
		t.Errorf("outside a cluster: exit %d, output %q; want 1 and the missing in-cluster config", code, logs)
	}
}

// tarDir is the build context of dir's regular files, executable bits kept.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		data, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, err := en.Info()
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: en.Name(), Mode: int64(info.Mode().Perm()), Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// runOnce runs the image with args and no network until it exits, and
// returns its exit code and output. docker.RunContainer is for servers (it
// publishes a port, which a process that exits at once no longer has), so
// this uses the engine's client.
func runOnce(ctx context.Context, t *testing.T, cli *client.Client, ref string, args ...string) (int, string) {
	t.Helper()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: ref, Cmd: args, Labels: map[string]string{image.LabelManaged: "true", "io.aksml.test": t.Name()}},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := cli.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}()
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	var code int
	select {
	case r := <-wait.Result:
		code = int(r.StatusCode)
	case err := <-wait.Error:
		t.Fatal(err)
	}
	rc, err := cli.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}
