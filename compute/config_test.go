package compute

import (
	"errors"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/errcodetest"
	"github.com/google/go-cmp/cmp"
)

var customCert = SSLConfig{CName: "www.contoso.com", CertFile: "cert.pem", KeyFile: "key.pem"}

var fullVNet = VNetConfig{
	ResourceGroup: "net-rg", Name: "vnet", SubnetName: "aks-subnet",
	ServiceCIDR: "10.0.0.0/16", DNSServiceIP: "10.0.0.10", DockerBridgeCIDR: "172.17.0.1/16",
}

// TestProvisioningConfigValidate has one row per rule of reference §1 that
// ProvisioningConfig enforces (rows named "rule: ..."), plus valid configs.
func TestProvisioningConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  ProvisioningConfig
		want []string
	}{
		{"valid: zero value means every default", ProvisioningConfig{}, nil},
		{"valid: DevTest on one small node", ProvisioningConfig{ClusterPurpose: DevTest, VMSize: "Standard_D1_v2"}, nil},
		{"valid: custom vnet and certificate, internal LB", ProvisioningConfig{VNet: fullVNet, SSL: customCert, LoadBalancerType: InternalLoadBalancer, LoadBalancerSubnet: "ilb"}, nil},
		{"valid: leaf label with overwrite", ProvisioningConfig{SSL: SSLConfig{LeafDomainLabel: "myservice", OverwriteExistingDomain: true}}, nil},
		{"valid: GPU size in lower case without prefix", ProvisioningConfig{VMSize: "nc6s_v3", AgentCount: 3}, nil},
		{"valid: DenseProd 3 x D4_v3", ProvisioningConfig{ClusterPurpose: DenseProd, VMSize: "Standard_D4_v3"}, nil},

		{"rule: agent_count must be positive", ProvisioningConfig{AgentCount: -1},
			[]string{"agent_count -1 must be a positive integer"}},
		{"rule: vm_size must be known", ProvisioningConfig{VMSize: "Standard_Z9"},
			[]string{`vm_size "Standard_Z9" is not a VM size`}},
		{"rule: cluster_purpose must be known", ProvisioningConfig{ClusterPurpose: "Prod"},
			[]string{`cluster_purpose "Prod" must be FastProd, DenseProd or DevTest`}},
		{"rule: load_balancer_type must be known", ProvisioningConfig{LoadBalancerType: "Private"},
			[]string{`load_balancer_type "Private" must be PublicIp or InternalLoadBalancer`}},
		{"rule: cname, cert and key together", ProvisioningConfig{SSL: SSLConfig{CName: "a.b", CertFile: "c.pem"}},
			[]string{"ssl_cname and ssl_cert_pem_file given, ssl_key_pem_file missing"}},
		{"rule: leaf label exclusive with cname/cert/key", ProvisioningConfig{SSL: SSLConfig{CName: "a.b", CertFile: "c", KeyFile: "k", LeafDomainLabel: "x"}},
			[]string{`leaf_domain_label "x" cannot be combined with ssl_cname, ssl_cert_pem_file, ssl_key_pem_file`}},
		{"rule: overwrite only with leaf label", ProvisioningConfig{SSL: SSLConfig{OverwriteExistingDomain: true}},
			[]string{"overwrite_existing_domain true is only allowed with leaf_domain_label"}},
		{"rule: leaf label is a DNS label prefix", ProvisioningConfig{SSL: SSLConfig{LeafDomainLabel: "My_Service"}},
			[]string{`leaf_domain_label "My_Service" must be 1 to 57 lowercase letters`}},
		{"rule: internal load balancer needs a custom certificate", ProvisioningConfig{LoadBalancerType: InternalLoadBalancer, SSL: SSLConfig{LeafDomainLabel: "svc"}},
			[]string{"load_balancer_type InternalLoadBalancer needs a custom certificate"}},
		{"rule: vnet fields all or none", ProvisioningConfig{VNet: VNetConfig{Name: "vnet", SubnetName: "s"}},
			[]string{"for custom vnet, please provide vnet name, vnet resource group, subnet name, service cidr, dns service ip and docker bridge cidr; vnet_name, subnet_name given, vnet_resourcegroup_name, service_cidr, dns_service_ip, docker_bridge_cidr missing"}},
		{"rule: service_cidr is a CIDR", ProvisioningConfig{VNet: func() VNetConfig { v := fullVNet; v.ServiceCIDR = "10.0.0.0"; return v }()},
			[]string{`service_cidr "10.0.0.0" is not a CIDR range`}},
		{"rule: dns_service_ip is an IP", ProvisioningConfig{VNet: func() VNetConfig { v := fullVNet; v.DNSServiceIP = "ten"; return v }()},
			[]string{`dns_service_ip "ten" is not an IP address`}},
		{"rule: dns_service_ip inside service_cidr", ProvisioningConfig{VNet: func() VNetConfig { v := fullVNet; v.DNSServiceIP = "10.1.0.10"; return v }()},
			[]string{"dns_service_ip 10.1.0.10 is outside service_cidr 10.0.0.0/16"}},
		{"rule: docker_bridge_cidr is a CIDR", ProvisioningConfig{VNet: func() VNetConfig { v := fullVNet; v.DockerBridgeCIDR = "bridge"; return v }()},
			[]string{`docker_bridge_cidr "bridge" is not a CIDR range`}},
		{"rule: FastProd needs 3 nodes", ProvisioningConfig{AgentCount: 2, VMSize: "Standard_D5_v2"},
			[]string{"agent_count 2 is below the 3 nodes a FastProd cluster needs"}},
		{"rule: FastProd needs 12 vCPUs", ProvisioningConfig{AgentCount: 3, VMSize: "Standard_D2_v2"},
			[]string{"agent_count 3 × vm_size Standard_D2_v2 (2 vCPUs) = 6 vCPUs is below the 12 vCPUs a FastProd cluster needs"}},
		{"rule: DenseProd needs 3 nodes and 12 vCPUs", ProvisioningConfig{AgentCount: 1, ClusterPurpose: DenseProd},
			[]string{"agent_count 1 is below the 3 nodes a DenseProd cluster needs", "agent_count 1 × vm_size Standard_D3_v2 (4 vCPUs) = 4 vCPUs is below the 12 vCPUs"}},

		{"every broken rule at once", ProvisioningConfig{
			AgentCount: -2, VMSize: "huge", ClusterPurpose: "x", LoadBalancerType: "y",
			SSL:  SSLConfig{KeyFile: "k", LeafDomainLabel: "l", OverwriteExistingDomain: true},
			VNet: VNetConfig{ServiceCIDR: "bad"},
		}, []string{"agent_count -2", `vm_size "huge"`, `cluster_purpose "x"`, `load_balancer_type "y"`,
			"must be given together", "cannot be combined", "for custom vnet", `service_cidr "bad"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errcodetest.CheckInvalid(t, tt.cfg.Validate(), tt.want, true)
		})
	}
}

func TestProvisioningConfigWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  ProvisioningConfig
		want []Warning
	}{
		{"rule: DevTest under 2 vCPUs warns", ProvisioningConfig{ClusterPurpose: DevTest, VMSize: "D1_v2"},
			[]Warning{{Field: "agent_count", Message: "agent_count 1 × vm_size Standard_D1_v2 (1 vCPUs) = 1 vCPUs is below the 2 vCPUs Azure recommends for a DevTest cluster"}}},
		{"DevTest with 2 vCPUs does not warn", ProvisioningConfig{ClusterPurpose: DevTest, VMSize: "D1_v2", AgentCount: 2}, nil},
		{"default DevTest does not warn", ProvisioningConfig{ClusterPurpose: DevTest}, nil},
		{"production never warns", ProvisioningConfig{AgentCount: 1, VMSize: "D1_v2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.cfg.Warnings()); diff != "" {
				t.Errorf("Warnings() mismatch (-want +got):\n%s", diff)
			}
			if err := tt.cfg.Validate(); err != nil && tt.want != nil {
				t.Errorf("a warning is not an error, got %v", err)
			}
		})
	}
}

func TestValidateCapacity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		purpose     ClusterPurpose
		nodes, cpus int
		want        []string
		warns       int
	}{
		{"production ok", FastProd, 3, 12, nil, 0},
		{"zero purpose is FastProd", "", 2, 24, []string{"the cluster's 2 nodes is below the 3 nodes a FastProd cluster needs"}, 0},
		{"rule: production vCPUs", FastProd, 4, 8, []string{"the cluster's 8 vCPUs is below the 12 vCPUs a FastProd cluster needs"}, 0},
		{"rule: DevTest needs one node", DevTest, 0, 0, []string{"the cluster's 0 nodes is below the 1 node a DevTest cluster needs"}, 0},
		{"DevTest small warns", DevTest, 1, 1, nil, 1},
		{"unknown purpose", "Big", 9, 99, []string{`cluster_purpose "Big"`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := ValidateCapacity(tt.purpose, tt.nodes, tt.cpus)
			errcodetest.CheckInvalid(t, err, tt.want, true)
			if len(w) != tt.warns {
				t.Errorf("got %d warnings %v, want %d", len(w), w, tt.warns)
			}
		})
	}
}

func TestProvisioningConfigWithDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   ProvisioningConfig
		want ProvisioningConfig
	}{
		{"zero", ProvisioningConfig{}, ProvisioningConfig{AgentCount: 3, VMSize: "Standard_D3_v2", ClusterPurpose: FastProd, LoadBalancerType: PublicIP, LoadBalancerSubnet: "aks-subnet"}},
		{"DevTest has one agent", ProvisioningConfig{ClusterPurpose: DevTest}, ProvisioningConfig{AgentCount: 1, VMSize: "Standard_D3_v2", ClusterPurpose: DevTest, LoadBalancerType: PublicIP, LoadBalancerSubnet: "aks-subnet"}},
		{"DenseProd has three", ProvisioningConfig{ClusterPurpose: DenseProd}, ProvisioningConfig{AgentCount: 3, VMSize: "Standard_D3_v2", ClusterPurpose: DenseProd, LoadBalancerType: PublicIP, LoadBalancerSubnet: "aks-subnet"}},
		{"given values kept, size spelled canonically", ProvisioningConfig{AgentCount: 5, VMSize: "nc24R", Location: "westeurope", LoadBalancerType: InternalLoadBalancer, LoadBalancerSubnet: "s"},
			ProvisioningConfig{AgentCount: 5, VMSize: "Standard_NC24r", Location: "westeurope", ClusterPurpose: FastProd, LoadBalancerType: InternalLoadBalancer, LoadBalancerSubnet: "s"}},
		{"unknown size kept", ProvisioningConfig{VMSize: "odd"}, ProvisioningConfig{AgentCount: 3, VMSize: "odd", ClusterPurpose: FastProd, LoadBalancerType: PublicIP, LoadBalancerSubnet: "aks-subnet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.in.WithDefaults()); diff != "" {
				t.Errorf("WithDefaults() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

const goodID = "/subscriptions/0000-1111/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1"

// TestAttachConfigValidate has one row per attach rule of reference §1 plus
// the kubeconfig extension.
func TestAttachConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  AttachConfig
		want []string
	}{
		{"valid: resource id", AttachConfig{ResourceID: goodID}, nil},
		{"valid: resource id, any keyword case", AttachConfig{ResourceID: "/Subscriptions/s/resourceGroups/rg/providers/microsoft.containerservice/ManagedClusters/a"}, nil},
		{"valid: group and name", AttachConfig{ResourceGroup: "rg", ClusterName: "aks1", ClusterPurpose: DevTest}, nil},
		{"valid: kubeconfig only", AttachConfig{Kubeconfig: "/home/u/.kube/config"}, nil},
		{"valid: kubeconfig and context", AttachConfig{Kubeconfig: "kc", Context: "kind-aksml"}, nil},
		{"valid: kubeconfig with an AKS identity", AttachConfig{Kubeconfig: "kc", ResourceID: goodID}, nil},
		{"valid: internal LB with subnet and cert", AttachConfig{ResourceID: goodID, LoadBalancerType: InternalLoadBalancer, LoadBalancerSubnet: "sub", SSL: customCert}, nil},

		{"rule: resource_id has 9 segments", AttachConfig{ResourceID: "subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/a"},
			[]string{"must have 9 segments when split on \"/\""}},
		{"rule: resource_id segment 6 is Microsoft.ContainerService", AttachConfig{ResourceID: "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/a"},
			[]string{`resource type "Microsoft.Compute" does not match for AKS`}},
		{"rule: resource_id keywords and names", AttachConfig{ResourceID: "/subscriptions//resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/a"},
			[]string{"is not of the form /subscriptions/{subscription}"}},
		{"rule: resource_id not with group or name", AttachConfig{ResourceID: goodID, ClusterName: "aks1"},
			[]string{`resource_id cannot be combined with resource_group "" or cluster_name "aks1"`}},
		{"rule: group and name both required", AttachConfig{ResourceGroup: "rg"},
			[]string{"resource_group and cluster_name are both required without resource_id or kubeconfig; cluster_name missing"}},
		{"rule: group and name both required, nothing given", AttachConfig{},
			[]string{"resource_group and cluster_name missing"}},
		{"rule: group and name both required even with kubeconfig once one is given", AttachConfig{Kubeconfig: "kc", ClusterName: "a"},
			[]string{"resource_group missing"}},
		{"rule: context only with kubeconfig", AttachConfig{ResourceID: goodID, Context: "ctx"},
			[]string{`context "ctx" is only allowed with kubeconfig`}},
		{"rule: cluster_purpose must be known", AttachConfig{ResourceID: goodID, ClusterPurpose: "Dev"},
			[]string{`cluster_purpose "Dev"`}},
		{"rule: load_balancer_type PublicIp or InternalLoadBalancer", AttachConfig{ResourceID: goodID, LoadBalancerType: "internal"},
			[]string{`load_balancer_type "internal" must be PublicIp or InternalLoadBalancer`}},
		{"rule: subnet only with InternalLoadBalancer", AttachConfig{ResourceID: goodID, LoadBalancerSubnet: "sub"},
			[]string{`load_balancer_subnet "sub" is only allowed with load_balancer_type InternalLoadBalancer, not PublicIp (the default)`}},
		{"rule: TLS rules apply on attach", AttachConfig{ResourceID: goodID, LoadBalancerType: InternalLoadBalancer, SSL: SSLConfig{LeafDomainLabel: "x", KeyFile: "k"}},
			[]string{"must be given together", "cannot be combined", "needs a custom certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errcodetest.CheckInvalid(t, tt.cfg.Validate(), tt.want, true)
		})
	}
}

func TestAttachConfigWithDefaults(t *testing.T) {
	t.Parallel()
	got := AttachConfig{ResourceID: goodID}.WithDefaults()
	want := AttachConfig{ResourceID: goodID, ClusterPurpose: FastProd, LoadBalancerType: PublicIP}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	got = AttachConfig{ResourceID: goodID, LoadBalancerType: InternalLoadBalancer}.WithDefaults()
	if got.LoadBalancerSubnet != "aks-subnet" {
		t.Errorf("internal LB subnet = %q, want aks-subnet", got.LoadBalancerSubnet)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("defaults are invalid: %v", err)
	}
}

func TestAKSResourceID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  AttachConfig
		want string
	}{
		{AttachConfig{ResourceGroup: "rg", ClusterName: "aks1"}, "/subscriptions/sub/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1"},
		{AttachConfig{ResourceID: goodID}, goodID},
		{AttachConfig{Kubeconfig: "kc"}, ""},
	}
	for _, tt := range tests {
		if got := tt.cfg.AKSResourceID("sub"); got != tt.want {
			t.Errorf("AKSResourceID(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
	r, err := ParseAKSResourceID(goodID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (AKSResource{SubscriptionID: "0000-1111", ResourceGroup: "rg", ClusterName: "aks1"}); r != want {
		t.Errorf("ParseAKSResourceID = %+v, want %+v", r, want)
	}
	if r.String() != goodID {
		t.Errorf("String() = %q, want %q", r.String(), goodID)
	}
}

func TestVNetSubnetID(t *testing.T) {
	t.Parallel()
	want := "/subscriptions/s/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aks-subnet"
	if got := fullVNet.SubnetID("s"); got != want {
		t.Errorf("SubnetID = %q, want %q", got, want)
	}
}

func TestSSLStatus(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		s    SSLConfig
		want string
		on   bool
	}{
		{SSLConfig{}, "Disabled", false},
		{customCert, "Enabled", true},
		{SSLConfig{LeafDomainLabel: "x"}, "Auto", true},
	} {
		if got := tt.s.Status(); got != tt.want {
			t.Errorf("%+v.Status() = %q, want %q", tt.s, got, tt.want)
		}
		if got := tt.s.Enabled(); got != tt.on {
			t.Errorf("%+v.Enabled() = %v, want %v", tt.s, got, tt.on)
		}
	}
}

func TestParseEnums(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ClusterPurpose{"fastprod": FastProd, "DEVTEST": DevTest, "DenseProd": DenseProd, "": ""} {
		if got, err := ParseClusterPurpose(in); err != nil || got != want {
			t.Errorf("ParseClusterPurpose(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseClusterPurpose("prod"); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("ParseClusterPurpose(prod) err = %v, want InvalidArgument", err)
	}
	for in, want := range map[string]LoadBalancerType{"publicip": PublicIP, "InternalLoadBalancer": InternalLoadBalancer, "": ""} {
		if got, err := ParseLoadBalancerType(in); err != nil || got != want {
			t.Errorf("ParseLoadBalancerType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseLoadBalancerType("ilb"); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("ParseLoadBalancerType(ilb) err = %v, want InvalidArgument", err)
	}
}

func TestProvisioningStateTerminal(t *testing.T) {
	t.Parallel()
	want := map[ProvisioningState]bool{
		ProvisioningUnknown: false, ProvisioningUpdating: false, ProvisioningCreating: false, ProvisioningDeleting: false,
		ProvisioningSucceeded: true, ProvisioningFailed: true, ProvisioningCanceled: true,
	}
	for s, w := range want {
		if s.Terminal() != w {
			t.Errorf("%s.Terminal() = %v, want %v", s, !w, w)
		}
	}
}

func FuzzParseAKSResourceID(f *testing.F) {
	for _, s := range []string{goodID, "", "/", "////////", "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/a/b",
		"/subscriptions/s/resourcegroups/rg/providers/microsoft.containerservice/managedclusters/\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		r, err := ParseAKSResourceID(id)
		cfg := AttachConfig{ResourceID: id}
		verr := cfg.Validate()
		if err != nil {
			if !errors.Is(err, errcode.InvalidArgument) || verr == nil {
				t.Fatalf("ParseAKSResourceID(%q) = %v; Validate = %v", id, err, verr)
			}
			return
		}
		if verr != nil {
			t.Fatalf("parsed %q but Validate failed: %v", id, verr)
		}
		if strings.Contains(r.SubscriptionID+r.ResourceGroup+r.ClusterName, "/") {
			t.Fatalf("segments contain a slash: %+v", r)
		}
		again, err := ParseAKSResourceID(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", id, again, err, r)
		}
	})
}
