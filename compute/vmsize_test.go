package compute

import (
	"testing"
)

func TestLookupVMSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		name     string
		vcpus    int
		mem      float64
		gpus     int
		gpuModel string
		fpgas    int
	}{
		{"Standard_D1_v2", "Standard_D1_v2", 1, 3.5, 0, "", 0},
		{"Standard_D3_v2", "Standard_D3_v2", 4, 14, 0, "", 0},
		{"d14_v2", "Standard_D14_v2", 16, 112, 0, "", 0},
		{"STANDARD_D64_V3", "Standard_D64_v3", 64, 256, 0, "", 0},
		{"Standard_NC6", "Standard_NC6", 6, 56, 1, "NVIDIA Tesla K80", 0},
		{"nc24r", "Standard_NC24r", 24, 224, 4, "NVIDIA Tesla K80", 0},
		{"Standard_NC6s_v3", "Standard_NC6s_v3", 6, 112, 1, "NVIDIA Tesla V100", 0},
		{"standard_nc24s_v3", "Standard_NC24s_v3", 24, 448, 4, "NVIDIA Tesla V100", 0},
		{"ND12s", "Standard_ND12s", 12, 224, 2, "NVIDIA Tesla P40", 0},
		{"Standard_ND24rs", "Standard_ND24rs", 24, 448, 4, "NVIDIA Tesla P40", 0},
		{"pb6s", "Standard_PB6s", 6, 112, 0, "", 1},
	}
	for _, tt := range tests {
		s, ok := LookupVMSize(tt.in)
		if !ok {
			t.Errorf("LookupVMSize(%q) not found", tt.in)
			continue
		}
		if s.Name != tt.name || s.VCPUs != tt.vcpus || s.MemoryGiB != tt.mem || s.GPUs != tt.gpus || s.GPUModel != tt.gpuModel || s.FPGAs != tt.fpgas {
			t.Errorf("LookupVMSize(%q) = %+v", tt.in, s)
		}
	}
	for _, bad := range []string{"", "Standard_", "D3", "Standard_D3_v4", "Standard_Standard_D3_v2", " Standard_D3_v2"} {
		if s, ok := LookupVMSize(bad); ok {
			t.Errorf("LookupVMSize(%q) = %+v, want not found", bad, s)
		}
	}
}

// TestVMSizesCoverage checks that every size the brief and reference §1 name
// is in the catalog, and that the catalog is consistent.
func TestVMSizesCoverage(t *testing.T) {
	t.Parallel()
	want := []string{
		"D1_v2", "D2_v2", "D3_v2", "D4_v2", "D5_v2", "D11_v2", "D12_v2", "D13_v2", "D14_v2",
		"D2_v3", "D4_v3", "D8_v3", "D16_v3", "D32_v3", "D48_v3", "D64_v3",
		"NC6", "NC12", "NC24", "NC24r", "NC6s_v3", "NC12s_v3", "NC24s_v3",
		"ND6s", "ND12s", "ND24s", "ND24rs", "PB6s",
	}
	all := VMSizes()
	if len(all) != len(want) {
		t.Errorf("catalog has %d sizes, want %d", len(all), len(want))
	}
	for _, n := range want {
		if _, ok := LookupVMSize("Standard_" + n); !ok {
			t.Errorf("missing %s", n)
		}
	}
	seen := map[string]bool{}
	for _, s := range all {
		if seen[s.Name] {
			t.Errorf("duplicate %s", s.Name)
		}
		seen[s.Name] = true
		if s.VCPUs <= 0 || s.MemoryGiB <= 0 {
			t.Errorf("%s: non-positive figures %+v", s.Name, s)
		}
		if (s.GPUs > 0) != (s.GPUModel != "") || (s.FPGAs > 0) != (s.FPGAModel != "") {
			t.Errorf("%s: accelerator count and model disagree: %+v", s.Name, s)
		}
	}
	all[0].VCPUs = 999
	if s, _ := LookupVMSize(all[0].Name); s.VCPUs == 999 {
		t.Error("VMSizes returned the catalog itself, not a copy")
	}
}
