package compute_test

import (
	"fmt"

	"github.com/aksml/aksml/compute"
)

// A production cluster needs 3 nodes and 12 vCPUs; Validate lists every
// broken rule, in the SDK's wording, at once.
func ExampleProvisioningConfig_Validate() {
	cfg := compute.ProvisioningConfig{
		AgentCount: 2,
		VMSize:     "Standard_D2_v2",
		SSL:        compute.SSLConfig{CName: "ml.contoso.com", CertFile: "cert.pem"},
	}
	fmt.Println(cfg.Validate())

	cfg = compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, VMSize: "d1_v2"}
	fmt.Println(cfg.Validate(), cfg.Warnings())

	d := compute.ProvisioningConfig{}.WithDefaults()
	fmt.Println(d.AgentCount, d.VMSize, d.ClusterPurpose, d.LoadBalancerType, d.LoadBalancerSubnet)
	// Output:
	// Invalid configuration, ssl_cname, ssl_cert_pem_file and ssl_key_pem_file must be given together; ssl_cname and ssl_cert_pem_file given, ssl_key_pem_file missing.
	// Invalid configuration, agent_count 2 is below the 3 nodes a FastProd cluster needs.
	// Invalid configuration, agent_count 2 × vm_size Standard_D2_v2 (2 vCPUs) = 4 vCPUs is below the 12 vCPUs a FastProd cluster needs.
	// <nil> [agent_count 1 × vm_size Standard_D1_v2 (1 vCPUs) = 1 vCPUs is below the 2 vCPUs Azure recommends for a DevTest cluster]
	// 3 Standard_D3_v2 FastProd PublicIp aks-subnet
}

func ExampleAttachConfig() {
	aks := compute.AttachConfig{ResourceGroup: "ml-rg", ClusterName: "aks-prod"}
	fmt.Println(aks.Validate(), aks.AKSResourceID("0000-1111"))

	kind := compute.AttachConfig{Kubeconfig: "/home/me/.kube/config", Context: "kind-aksml"}
	fmt.Println(kind.Validate())

	bad := compute.AttachConfig{ResourceID: "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm", ClusterName: "x"}
	fmt.Println(bad.Validate())
	// Output:
	// <nil> /subscriptions/0000-1111/resourcegroups/ml-rg/providers/Microsoft.ContainerService/managedClusters/aks-prod
	// <nil>
	// Invalid configuration, resource_id "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm": resource type "Microsoft.Compute" does not match for AKS (want Microsoft.ContainerService).
	// Invalid configuration, resource_id cannot be combined with resource_group "" or cluster_name "x": identify the cluster one way.
}

func ExampleLookupVMSize() {
	s, ok := compute.LookupVMSize("nc6s_v3")
	fmt.Println(ok, s.Name, s.VCPUs, s.MemoryGiB, s.GPUs, s.GPUModel)
	s, _ = compute.LookupVMSize("Standard_PB6s")
	fmt.Println(s.Name, s.FPGAs, s.FPGAModel)
	// Output:
	// true Standard_NC6s_v3 6 112 1 NVIDIA Tesla V100
	// Standard_PB6s 1 Intel Arria 10
}

func ExampleValidateName() {
	fmt.Println(compute.ValidateName("aks-prod"))
	fmt.Println(compute.ValidateName("1_x"))
	// Output:
	// <nil>
	// Invalid compute target name "1_x": it must start with a letter; it may contain only letters, digits and dashes (found '_').
}
