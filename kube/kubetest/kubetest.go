package kubetest

import (
	"context"
	"testing"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/kube/controlplane"
)

// The control plane and its nodes are package controlplane's; kubetest
// adds the tie to a test's lifetime.
type (
	// ControlPlane is a running control plane (see controlplane.ControlPlane).
	ControlPlane = controlplane.ControlPlane
	// Options configure Start.
	Options = controlplane.Options
	// NodeSpec is a node to register.
	NodeSpec = controlplane.NodeSpec
	// Node is a registered node.
	Node = controlplane.Node
	// PodOutcome is how a pod behaves on a harness node.
	PodOutcome = controlplane.PodOutcome
	// Behavior is what a pod does on a harness node.
	Behavior = controlplane.Behavior
)

// Pod behaviours (see controlplane.Behavior).
const (
	Ready     = controlplane.Ready
	NotReady  = controlplane.NotReady
	CrashLoop = controlplane.CrashLoop
	ImagePull = controlplane.ImagePull
)

// Node labels and resources of the harness's nodes (see controlplane).
const (
	KubeVersion      = controlplane.KubeVersion
	LabelAccelerator = controlplane.LabelAccelerator
	LabelAgentPool   = controlplane.LabelAgentPool
	LabelInstance    = controlplane.LabelInstance
	ResourceGPU      = controlplane.ResourceGPU
	ResourceFPGA     = controlplane.ResourceFPGA
)

// Binaries are the programs Start needs in BinDir.
var Binaries = controlplane.Binaries

// BinDir is where scripts/kubebins puts the binaries (controlplane.BinDir).
func BinDir() string { return controlplane.BinDir() }

// MissingBinaries returns the binaries dir lacks, as paths.
func MissingBinaries(dir string) []string { return controlplane.MissingBinaries(dir) }

// NodesForShape returns the nodes of a cluster of the given shape, as AKS
// would label them.
func NodesForShape(shape driver.ClusterShape) []NodeSpec { return controlplane.NodesForShape(shape) }

// New starts a control plane outside a test (controlplane.New).
func New(ctx context.Context, opts *Options) (*ControlPlane, error) {
	return controlplane.New(ctx, opts)
}

// Start starts a control plane for t and stops it, with every node and
// process, in t.Cleanup (logging each component's log tail when t failed).
// It fails t (never skips) when the binaries are missing, naming
// scripts/kubebins.
func Start(t testing.TB, opts *Options) *ControlPlane {
	t.Helper()
	cp, err := controlplane.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: %s", cp.LogTails(15))
		}
		_ = cp.Close()
	})
	return cp
}

// AddNode registers a node with cp and waits until it is Ready; it fails t
// if the node cannot register.
func AddNode(t testing.TB, cp *ControlPlane, spec NodeSpec) *Node {
	t.Helper()
	n, err := cp.AddNode(spec)
	if err != nil {
		t.Fatalf("kubetest: node %s: %v", spec.Name, err)
	}
	return n
}
