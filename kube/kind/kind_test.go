package kind_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube/kind"
)

func ExampleClusterConfig() {
	cfg := kind.ClusterConfig(driver.ClusterShape{AgentCount: 2, VMSize: "Standard_NC6s_v3", GPUs: 1})
	for _, n := range cfg.Nodes {
		var labels []string
		for k, v := range n.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		fmt.Println(n.Role, labels)
	}
	// Output:
	// control-plane []
	// worker [kubernetes.azure.com/accelerator=nvidia kubernetes.azure.com/agentpool=nodepool1 node.kubernetes.io/instance-type=Standard_NC6s_v3]
	// worker [kubernetes.azure.com/accelerator=nvidia kubernetes.azure.com/agentpool=nodepool1 node.kubernetes.io/instance-type=Standard_NC6s_v3]
}

// fakeEngine puts a docker CLI on PATH (and nothing else) that answers -v
// and info as given and knows no image.
func fakeEngine(t *testing.T, infoOK bool) {
	dir := t.TempDir()
	info := `echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1`
	if infoOK {
		info = `echo "Server Version: 28.2.2"`
	}
	script := `#!/bin/sh
case "$1" in
-v) echo "Docker version 28.2.2, build e6534b4" ;;
info) ` + info + ` ;;
image) echo "Error response from daemon: No such image: $3" >&2; exit 1 ;;
*) exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+"/bin:/usr/bin")
}

func TestProvisionClearErrors(t *testing.T) {
	shape := driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
		want  []string
	}{
		{"no engine", func(t *testing.T) { t.Setenv("PATH", t.TempDir()) }, []string{"running container engine", "docker: not installed", "podman: not installed"}},
		{"engine not running", func(t *testing.T) { fakeEngine(t, false) }, []string{"running container engine", "Is the docker daemon running?"}},
		{"no node image", func(t *testing.T) { fakeEngine(t, true) }, []string{"kind node image aksml.test/kind-node:v0 is not in the docker engine", "No such image", "cannot pull"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := kind.New(&kind.Options{NodeImage: "aksml.test/kind-node:v0", KubeconfigDir: t.TempDir()})
			start := time.Now()
			_, err := p.Provision(ctx, "aks-local", shape)
			if !errors.Is(err, errcode.FailedPrecondition) {
				t.Fatalf("Provision: %v, want FailedPrecondition", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the error took %v", d)
			}
		})
	}
}

// fakeEngineWithImage puts a docker CLI on PATH that passes Provision's
// checks (info, image inspect) but cannot run kind: kind's own
// `docker info --format` waits until the returned function is called, then
// fails. `ps` lists nothing, so kind's delete finds no nodes. A real kind
// create cannot run here: this machine has no kind node image.
func fakeEngineWithImage(t *testing.T) (release func()) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
case "$1" in
-v) echo "Docker version 28.2.2, build e6534b4" ;;
info)
  if [ -n "$2" ]; then
    cat "` + gate + `" >/dev/null
    echo "fake engine: cannot describe itself to kind" >&2; exit 1
  fi
  echo "Server Version: 28.2.2" ;;
image) echo '[{"Id":"sha256:0"}]' ;;
ps) ;;
*) echo "fake engine: $* is not supported" >&2; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+"/bin:/usr/bin")
	var once sync.Once
	release = func() {
		once.Do(func() {
			// Opening the fifo for writing waits for kind's `docker info`
			// to open it for reading; closing it ends that read.
			f, err := os.OpenFile(gate, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.Close()
		})
	}
	return release
}

// TestProvisionInBackground: with the engine and image present, Provision
// returns at once with the cluster Creating; service calls and LoadImage
// are refused until kind's create ends; a create that fails leaves the
// cluster Failed with kind's error, and Delete frees the name.
func TestProvisionInBackground(t *testing.T) {
	release := fakeEngineWithImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := kind.New(&kind.Options{NodeImage: "aksml.test/kind-node:v0", KubeconfigDir: t.TempDir()})
	shape := driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14}
	start := time.Now()
	dc, err := p.Provision(ctx, "aks-local", shape)
	returned := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	c := dc.(*kind.Cluster)
	if st, err := c.Status(ctx); err != nil || st.State != driver.StateCreating || st.Shape != shape {
		t.Errorf("status while kind creates: %+v %v, want Creating with the shape", st, err)
	}
	if err := c.ApplyService(ctx, &driver.ServiceSpec{Name: "svc"}); !errors.Is(err, errcode.FailedPrecondition) || !strings.Contains(err.Error(), "cluster aks-local is still Creating") {
		t.Errorf("ApplyService while Creating: %v", err)
	}
	if err := c.LoadImage(ctx, "example.com/img:1"); !errors.Is(err, errcode.FailedPrecondition) {
		t.Errorf("LoadImage while Creating: %v", err)
	}
	if ref, err := c.Distribute(ctx, "example.com/img:1"); !errors.Is(err, errcode.FailedPrecondition) || ref != "" {
		t.Errorf("Distribute while Creating: %q %v", ref, err)
	}
	if _, err := p.Provision(ctx, "aks-local", shape); !errors.Is(err, errcode.AlreadyExists) {
		t.Errorf("provisioning the name again: %v, want AlreadyExists", err)
	}
	if got, err := p.Cluster(ctx, "aks-local"); err != nil || got != dc {
		t.Errorf("Cluster while Creating: %v %v", got, err)
	}
	release()
	if err := c.Wait(ctx); !errors.Is(err, errcode.Unavailable) || !strings.Contains(err.Error(), "cannot describe itself to kind") {
		t.Errorf("Wait: %v, want Unavailable with kind's error", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.State != driver.StateFailed || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], `kind: create cluster "aks-local"`) {
		t.Errorf("status after a failed create: %+v %v", st, err)
	}
	t.Logf("TIMING provision_call=%v (engine and image checks through the CLI)", returned.Round(time.Millisecond))
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Cluster(ctx, "aks-local"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Cluster after Delete: %v, want NotFound", err)
	}
}

// TestDeleteWhileCreating: Delete during kind's create (which cannot be
// interrupted) waits for it, leaves no goroutine behind and reports
// Deleting.
func TestDeleteWhileCreating(t *testing.T) {
	release := fakeEngineWithImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := kind.New(&kind.Options{NodeImage: "aksml.test/kind-node:v0", KubeconfigDir: t.TempDir()})
	dc, err := p.Provision(ctx, "doomed", driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2"})
	if err != nil {
		t.Fatal(err)
	}
	c := dc.(*kind.Cluster)
	deleted := make(chan error, 1)
	go func() { deleted <- c.Delete(ctx) }()
	release()
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Delete returned with kind's create still running")
	}
	if st, _ := c.Status(ctx); st.State != driver.StateDeleting {
		t.Errorf("status after Delete: %+v", st)
	}
	if _, err := p.Cluster(ctx, "doomed"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Cluster after Delete: %v", err)
	}
}

func ExampleClusterConfig_serviceSubnet() {
	cfg := kind.ClusterConfig(driver.ClusterShape{AgentCount: 1, Network: driver.ClusterNetwork{ServiceCIDR: "10.1.0.0/16", DNSServiceIP: "10.1.0.10"}})
	fmt.Println(cfg.Networking.ServiceSubnet, len(cfg.Nodes))
	// Output: 10.1.0.0/16 2
}

func TestClusterNotFound(t *testing.T) {
	t.Parallel()
	p := kind.New(nil)
	if _, err := p.Cluster(context.Background(), "nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Cluster(missing) = %v, want NotFound", err)
	}
}
