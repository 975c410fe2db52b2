package simulator

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Resource names as Kubernetes reports them in scheduler messages.
const (
	resCPU    = "cpu"
	resMemory = "memory"
	resGPU    = "nvidia.com/gpu"
	// resFPGA is the FPGA extended resource. The name AKS uses is
	// unconfirmed (reference §1); this one is what Azure Stack Edge uses.
	resFPGA = "microsoft.com/fpga_catapult"
)

// resources are amounts in scheduler units: milli-CPU, MiB, whole devices.
type resources struct {
	milliCPU int64
	memMiB   int64
	gpus     int64
	fpgas    int64
}

func (r resources) add(o resources) resources {
	return resources{r.milliCPU + o.milliCPU, r.memMiB + o.memMiB, r.gpus + o.gpus, r.fpgas + o.fpgas}
}

func (r resources) sub(o resources) resources {
	return resources{r.milliCPU - o.milliCPU, r.memMiB - o.memMiB, r.gpus - o.gpus, r.fpgas - o.fpgas}
}

// requestOf converts a replica's requests (cores, GB, devices) to scheduler units.
func requestOf(cpu, memGB float64, gpus, fpgas int) resources {
	return resources{
		milliCPU: int64(math.Ceil(cpu * 1000)),
		memMiB:   int64(math.Ceil(memGB * 1024)),
		gpus:     int64(gpus),
		fpgas:    int64(fpgas),
	}
}

// node is one simulated agent node.
type node struct {
	name        string
	allocatable resources
	allocated   resources
	gpuModel    string
	removed     bool
}

// aksReserved returns what AKS keeps back on a node of the given size for the
// kubelet, the OS and eviction: kube-reserved CPU by core count, and memory
// at 25% of the first 4 GB, 20% of the next 4, 10% of the next 8, 6% of the
// next 112 and 2% above, plus the 100 MiB hard-eviction threshold. Published
// in the AKS "resource reservations" documentation.
func aksReserved(vcpus int, memGB float64) resources {
	var cpu int64
	switch {
	case vcpus <= 1:
		cpu = 60
	case vcpus <= 2:
		cpu = 100
	case vcpus <= 4:
		cpu = 140
	case vcpus <= 8:
		cpu = 180
	case vcpus <= 16:
		cpu = 260
	case vcpus <= 32:
		cpu = 420
	default:
		cpu = 740
	}
	mem := 0.0
	rest := memGB
	for _, band := range []struct{ size, frac float64 }{{4, 0.25}, {4, 0.20}, {8, 0.10}, {112, 0.06}, {math.Inf(1), 0.02}} {
		take := math.Min(rest, band.size)
		if take <= 0 {
			break
		}
		mem += take * band.frac
		rest -= take
	}
	return resources{milliCPU: cpu, memMiB: int64(mem*1024) + 100}
}

// systemPods is what the cluster's own pods request on the first node
// (azureml-fe, CoreDNS, kube-proxy, metrics): on AKS these leave less room
// than the node's allocatable figure suggests, a frequent surprise
// (reference, pain point 7).
var systemPods = resources{milliCPU: 400, memMiB: 600}

func newNodes(prefix string, count, vcpus int, memGB float64, gpus, fpgas int, gpuModel string) []*node {
	nodes := make([]*node, count)
	reserved := aksReserved(vcpus, memGB)
	for i := range nodes {
		alloc := resources{milliCPU: int64(vcpus) * 1000, memMiB: int64(memGB * 1024), gpus: int64(gpus), fpgas: int64(fpgas)}.sub(reserved)
		n := &node{name: fmt.Sprintf("aks-%s-%d", prefix, i), allocatable: alloc, gpuModel: gpuModel}
		if i == 0 {
			n.allocated = systemPods
		}
		nodes[i] = n
	}
	return nodes
}

// place picks a node for a request the way the Kubernetes scheduler's
// default scoring does (least allocated after placement), or explains in the
// scheduler's words why none fits:
// "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
func place(nodes []*node, req resources) (*node, string) {
	var best *node
	bestScore := -1.0
	reasons := map[string]int{}
	live := 0
	for _, n := range nodes {
		if n.removed {
			continue
		}
		live++
		free := n.allocatable.sub(n.allocated)
		fits := true
		for _, c := range []struct {
			name       string
			need, have int64
		}{
			{resCPU, req.milliCPU, free.milliCPU},
			{resMemory, req.memMiB, free.memMiB},
			{resGPU, req.gpus, free.gpus},
			{resFPGA, req.fpgas, free.fpgas},
		} {
			if c.need > 0 && c.need > c.have {
				reasons["Insufficient "+c.name]++
				fits = false
			}
		}
		if !fits {
			continue
		}
		after := free.sub(req)
		score := float64(after.milliCPU)/float64(max(n.allocatable.milliCPU, 1)) +
			float64(after.memMiB)/float64(max(n.allocatable.memMiB, 1))
		if score > bestScore {
			best, bestScore = n, score
		}
	}
	if best != nil {
		return best, ""
	}
	if live == 0 {
		return nil, "0/0 nodes are available: no nodes available to schedule pods."
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", reasons[k], k)
	}
	return nil, fmt.Sprintf("0/%d nodes are available: %s.", live, strings.Join(parts, ", "))
}
