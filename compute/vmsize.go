package compute

import "strings"

// VMSize is one Azure virtual-machine size of the vmCatalog: what a node of a
// cluster created with that agent VM size offers.
type VMSize struct {
	// Name is the canonical Azure name, such as "Standard_D3_v2".
	Name string
	// VCPUs is the number of virtual CPUs.
	VCPUs int
	// MemoryGiB is the memory in GiB, as Azure publishes it.
	MemoryGiB float64
	// GPUs is the number of GPUs Kubernetes schedules as nvidia.com/gpu
	// (an NC-series K80 card counts as two GPUs, as Azure counts it).
	GPUs int
	// GPUModel names the GPU, such as "NVIDIA Tesla V100"; empty without GPUs.
	GPUModel string
	// FPGAs is the number of FPGAs.
	FPGAs int
	// FPGAModel names the FPGA, such as "Intel Arria 10"; empty without FPGAs.
	FPGAModel string
}

// Standard_ names Azure uses for the sizes below, so the vmCatalog reads as a
// table. Figures: azure-docs articles/virtual-machines dv2-dsv2-series.md,
// dv3-dsv3-series.md, nc-series.md, ncv3-series.md, nd-series.md, and the
// Azure ML FPGA deployment article for PB6s.
var vmCatalog = []VMSize{
	// Dv2: general purpose.
	{Name: "Standard_D1_v2", VCPUs: 1, MemoryGiB: 3.5},
	{Name: "Standard_D2_v2", VCPUs: 2, MemoryGiB: 7},
	{Name: "Standard_D3_v2", VCPUs: 4, MemoryGiB: 14},
	{Name: "Standard_D4_v2", VCPUs: 8, MemoryGiB: 28},
	{Name: "Standard_D5_v2", VCPUs: 16, MemoryGiB: 56},
	// Dv2: memory optimised.
	{Name: "Standard_D11_v2", VCPUs: 2, MemoryGiB: 14},
	{Name: "Standard_D12_v2", VCPUs: 4, MemoryGiB: 28},
	{Name: "Standard_D13_v2", VCPUs: 8, MemoryGiB: 56},
	{Name: "Standard_D14_v2", VCPUs: 16, MemoryGiB: 112},
	// Dv3.
	{Name: "Standard_D2_v3", VCPUs: 2, MemoryGiB: 8},
	{Name: "Standard_D4_v3", VCPUs: 4, MemoryGiB: 16},
	{Name: "Standard_D8_v3", VCPUs: 8, MemoryGiB: 32},
	{Name: "Standard_D16_v3", VCPUs: 16, MemoryGiB: 64},
	{Name: "Standard_D32_v3", VCPUs: 32, MemoryGiB: 128},
	{Name: "Standard_D48_v3", VCPUs: 48, MemoryGiB: 192},
	{Name: "Standard_D64_v3", VCPUs: 64, MemoryGiB: 256},
	// NC: NVIDIA Tesla K80, each GPU half a card.
	{Name: "Standard_NC6", VCPUs: 6, MemoryGiB: 56, GPUs: 1, GPUModel: gpuK80},
	{Name: "Standard_NC12", VCPUs: 12, MemoryGiB: 112, GPUs: 2, GPUModel: gpuK80},
	{Name: "Standard_NC24", VCPUs: 24, MemoryGiB: 224, GPUs: 4, GPUModel: gpuK80},
	{Name: "Standard_NC24r", VCPUs: 24, MemoryGiB: 224, GPUs: 4, GPUModel: gpuK80},
	// NCv3: NVIDIA Tesla V100.
	{Name: "Standard_NC6s_v3", VCPUs: 6, MemoryGiB: 112, GPUs: 1, GPUModel: gpuV100},
	{Name: "Standard_NC12s_v3", VCPUs: 12, MemoryGiB: 224, GPUs: 2, GPUModel: gpuV100},
	{Name: "Standard_NC24s_v3", VCPUs: 24, MemoryGiB: 448, GPUs: 4, GPUModel: gpuV100},
	// ND: NVIDIA Tesla P40.
	{Name: "Standard_ND6s", VCPUs: 6, MemoryGiB: 112, GPUs: 1, GPUModel: gpuP40},
	{Name: "Standard_ND12s", VCPUs: 12, MemoryGiB: 224, GPUs: 2, GPUModel: gpuP40},
	{Name: "Standard_ND24s", VCPUs: 24, MemoryGiB: 448, GPUs: 4, GPUModel: gpuP40},
	{Name: "Standard_ND24rs", VCPUs: 24, MemoryGiB: 448, GPUs: 4, GPUModel: gpuP40},
	// PBS: Intel Arria 10 FPGA (Azure ML hardware-accelerated models).
	{Name: "Standard_PB6s", VCPUs: 6, MemoryGiB: 112, FPGAs: 1, FPGAModel: "Intel Arria 10"},
}

const (
	gpuK80  = "NVIDIA Tesla K80"
	gpuV100 = "NVIDIA Tesla V100"
	gpuP40  = "NVIDIA Tesla P40"
)

// DefaultVMSize is the agent VM size of a new cluster when none is given.
const DefaultVMSize = "Standard_D3_v2"

var vmCatalogIndex = func() map[string]int {
	m := make(map[string]int, len(vmCatalog))
	for i, s := range vmCatalog {
		m[vmKey(s.Name)] = i
	}
	return m
}()

// vmKey folds a size name to its lookup key: lower case, without the
// Standard_ prefix.
func vmKey(name string) string {
	k := strings.ToLower(name)
	return strings.TrimPrefix(k, "standard_")
}

// LookupVMSize finds a size in the vmCatalog. The name is matched without
// regard to case, with or without the "Standard_" prefix: "nc6s_v3",
// "Standard_NC6s_v3" and "STANDARD_NC6S_V3" all find Standard_NC6s_v3.
func LookupVMSize(name string) (VMSize, bool) {
	i, ok := vmCatalogIndex[vmKey(name)]
	if !ok {
		return VMSize{}, false
	}
	return vmCatalog[i], true
}

// VMSizes returns every size of the vmCatalog: the D-series v2 and v3, then
// the GPU sizes (NC, NCv3, ND), then the FPGA size PB6s. The slice is a copy.
func VMSizes() []VMSize {
	return append([]VMSize(nil), vmCatalog...)
}
