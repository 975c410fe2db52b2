package kubetest_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/kube/kubetest"
)

func gpuPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{kubetest.LabelAccelerator: "nvidia"},
			Tolerations:  []corev1.Toleration{{Key: kubetest.ResourceGPU, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{
				Name: "main", Image: "example.com/score@sha256:" + strings.Repeat("a", 64),
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{kubetest.ResourceGPU: resource.MustParse("1")}},
			}},
		},
	}
}

// TestIntegrationControlPlane starts the control plane with one CPU and one
// GPU node, and checks that the real scheduler puts a GPU pod on the GPU
// node, that the node reports it running, that its log comes back through
// the API server, and that a second GPU pod finds no GPU left.
func TestIntegrationControlPlane(t *testing.T) {
	t.Parallel()
	nodes := kubetest.NodesForShape(driver.ClusterShape{AgentCount: 1, VMSize: "Standard_D3_v2", VCPUs: 4, MemoryGB: 14})
	gpu := kubetest.NodesForShape(driver.ClusterShape{AgentCount: 1, VMSize: "Standard_NC6s_v3", VCPUs: 6, MemoryGB: 112, GPUs: 1})
	gpu[0].Name = "aks-gpupool-0"
	began := time.Now()
	cp := kubetest.Start(t, &kubetest.Options{
		Nodes: append(nodes, gpu...),
		Pods: func(p *corev1.Pod) kubetest.PodOutcome {
			return kubetest.PodOutcome{Logs: []string{"hello from " + p.Name}}
		},
	})
	t.Logf("control plane ready in %v; with 2 nodes %v", cp.Started, time.Since(began))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods := cp.Client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, gpuPod("gpu-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	for {
		p, err := pods.Get(ctx, "gpu-a", metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			got = p
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("pod never ran: %+v %v", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Spec.NodeName != "aks-gpupool-0" {
		t.Errorf("GPU pod on %q, want aks-gpupool-0", got.Spec.NodeName)
	}
	rc, err := pods.GetLogs("gpu-a", &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if strings.TrimSpace(string(b)) != "hello from gpu-a" {
		t.Errorf("logs %q", b)
	}
	if _, err := pods.Create(ctx, gpuPod("gpu-b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := pods.Get(ctx, "gpu-b", metav1.GetOptions{})
		if err == nil {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonUnschedulable {
					if !strings.Contains(c.Message, "Insufficient nvidia.com/gpu") {
						t.Errorf("scheduler message %q", c.Message)
					}
					return
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("second GPU pod never reported Unschedulable: %+v %v", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartWithoutBinaries checks the message a machine without the
// binaries gets.
func TestStartWithoutBinaries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if got := kubetest.MissingBinaries(dir); len(got) != len(kubetest.Binaries) {
		t.Errorf("MissingBinaries(empty dir) = %v", got)
	}
}
