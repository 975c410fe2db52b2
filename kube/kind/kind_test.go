package kind_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

func TestClusterNotFound(t *testing.T) {
	t.Parallel()
	p := kind.New(nil)
	if _, err := p.Cluster(context.Background(), "nope"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Cluster(missing) = %v, want NotFound", err)
	}
}
