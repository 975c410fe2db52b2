package compute

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/aksml/aksml/errcode"
)

// ClusterPurpose says what a cluster is for; the service sizes and checks
// production and dev-test clusters differently.
type ClusterPurpose string

// Cluster purposes. The zero value means FastProd, as no purpose means a
// production cluster in Azure.
const (
	// FastProd is a production cluster: at least 3 nodes and 12 vCPUs;
	// 3 nodes by default.
	FastProd ClusterPurpose = "FastProd"
	// DenseProd is a production cluster packed more densely. Azure lists it
	// beside FastProd without documenting its limits; aksml applies the
	// FastProd rules and defaults to it.
	DenseProd ClusterPurpose = "DenseProd"
	// DevTest is a development cluster: 1 node by default, at least 2 vCPUs
	// recommended.
	DevTest ClusterPurpose = "DevTest"
)

// ParseClusterPurpose returns the purpose named s, ignoring case
// ("fastprod", "DevTest"); an empty s gives the zero value (FastProd).
func ParseClusterPurpose(s string) (ClusterPurpose, error) {
	for _, p := range []ClusterPurpose{FastProd, DenseProd, DevTest} {
		if strings.EqualFold(s, string(p)) {
			return p, nil
		}
	}
	if s == "" {
		return "", nil
	}
	return "", invalidConfig("cluster_purpose %q must be FastProd, DenseProd or DevTest", s)
}

func (p ClusterPurpose) valid() bool {
	return p == "" || p == FastProd || p == DenseProd || p == DevTest
}

// orDefault returns p, or FastProd for the zero value.
func (p ClusterPurpose) orDefault() ClusterPurpose {
	if p == "" {
		return FastProd
	}
	return p
}

// LoadBalancerType is how the cluster's front end is exposed.
type LoadBalancerType string

// Load balancer types. The zero value means PublicIP.
const (
	// PublicIP exposes the front end on a public IP address (the default).
	PublicIP LoadBalancerType = "PublicIp"
	// InternalLoadBalancer exposes it on a private address of a subnet.
	InternalLoadBalancer LoadBalancerType = "InternalLoadBalancer"
)

// ParseLoadBalancerType returns the type named s, ignoring case; an empty s
// gives the zero value (PublicIP).
func ParseLoadBalancerType(s string) (LoadBalancerType, error) {
	for _, t := range []LoadBalancerType{PublicIP, InternalLoadBalancer} {
		if strings.EqualFold(s, string(t)) {
			return t, nil
		}
	}
	if s == "" {
		return "", nil
	}
	return "", invalidConfig("load_balancer_type %q must be PublicIp or InternalLoadBalancer", s)
}

func (t LoadBalancerType) valid() bool {
	return t == "" || t == PublicIP || t == InternalLoadBalancer
}

// Defaults the service applies when a field is not given.
const (
	// DefaultAgentCount is the node count of a production cluster.
	DefaultAgentCount = 3
	// DefaultDevTestAgentCount is the node count of a DevTest cluster.
	DefaultDevTestAgentCount = 1
	// DefaultLoadBalancerSubnet is the subnet of an internal load balancer.
	DefaultLoadBalancerSubnet = "aks-subnet"
)

// Capacity rules the Azure ML service applies to a cluster.
const (
	// MinProductionNodes is the fewest nodes of a FastProd or DenseProd cluster.
	MinProductionNodes = 3
	// MinProductionVCPUs is the fewest vCPUs (nodes × cores) of a production cluster.
	MinProductionVCPUs = 12
	// MinDevTestNodes is the fewest nodes of a DevTest cluster.
	MinDevTestNodes = 1
	// RecommendedDevTestVCPUs is the fewest vCPUs Azure recommends for DevTest;
	// fewer gives a warning, not an error.
	RecommendedDevTestVCPUs = 2
)

// ProvisioningState is the state of a compute target's last operation, the
// Azure Resource Manager enum.
type ProvisioningState string

// Provisioning states.
const (
	ProvisioningUnknown   ProvisioningState = "Unknown"
	ProvisioningUpdating  ProvisioningState = "Updating"
	ProvisioningCreating  ProvisioningState = "Creating"
	ProvisioningDeleting  ProvisioningState = "Deleting"
	ProvisioningSucceeded ProvisioningState = "Succeeded"
	ProvisioningFailed    ProvisioningState = "Failed"
	ProvisioningCanceled  ProvisioningState = "Canceled"
)

// Terminal reports whether s ends an operation: Succeeded, Failed or
// Canceled, the states wait_for_completion stops at.
func (s ProvisioningState) Terminal() bool {
	return s == ProvisioningSucceeded || s == ProvisioningFailed || s == ProvisioningCanceled
}

// Warning is advice about a valid configuration, such as a dev-test cluster
// with fewer vCPUs than Azure recommends.
type Warning struct {
	// Field is the SDK parameter the warning is about, such as "agent_count".
	Field string
	// Message says what is advised and why.
	Message string
}

// String returns the message.
func (w Warning) String() string { return w.Message }

// SSLConfig is the TLS setting of a cluster's front end, the parameters of
// enable_ssl. Either give your own certificate (CName, CertFile and KeyFile
// together) or ask for a Microsoft certificate with LeafDomainLabel; the zero
// value leaves TLS off.
type SSLConfig struct {
	// CName is the DNS name of the certificate (ssl_cname).
	CName string
	// CertFile is the path of the PEM certificate (ssl_cert_pem_file).
	CertFile string
	// KeyFile is the path of the PEM private key (ssl_key_pem_file).
	KeyFile string
	// LeafDomainLabel asks for a Microsoft certificate on
	// <label>######.<region>.cloudapp.azure.com (leaf_domain_label).
	LeafDomainLabel string
	// OverwriteExistingDomain replaces an existing leaf domain of the same
	// label (overwrite_existing_domain); only with LeafDomainLabel.
	OverwriteExistingDomain bool
}

// Enabled reports whether any TLS setting is given.
func (s SSLConfig) Enabled() bool { return s != SSLConfig{} }

// Status is the sslConfiguration.status Azure sends: "Enabled" for a custom
// certificate, "Auto" for a leaf domain label, "Disabled" otherwise.
func (s SSLConfig) Status() string {
	switch {
	case s.LeafDomainLabel != "":
		return "Auto"
	case s.CName != "" || s.CertFile != "" || s.KeyFile != "":
		return "Enabled"
	}
	return "Disabled"
}

// leafLabel: the label becomes the start of an Azure DNS label followed by
// six random characters, so it may end with a dash and is at most 57 long.
var leafLabel = regexp.MustCompile(`^[a-z][a-z0-9-]{0,56}$`)

func (s SSLConfig) problems(lb LoadBalancerType) []error {
	var errs []error
	var given, missing []string
	for _, f := range []struct{ name, value string }{
		{"ssl_cname", s.CName}, {"ssl_cert_pem_file", s.CertFile}, {"ssl_key_pem_file", s.KeyFile},
	} {
		if f.value != "" {
			given = append(given, f.name)
		} else {
			missing = append(missing, f.name)
		}
	}
	if len(given) > 0 && len(missing) > 0 {
		errs = append(errs, invalidConfig("ssl_cname, ssl_cert_pem_file and ssl_key_pem_file must be given together; %s given, %s missing",
			strings.Join(given, " and "), strings.Join(missing, " and ")))
	}
	if s.LeafDomainLabel != "" && len(given) > 0 {
		errs = append(errs, invalidConfig("leaf_domain_label %q cannot be combined with %s: use a Microsoft certificate or your own, not both",
			s.LeafDomainLabel, strings.Join(given, ", ")))
	}
	if s.OverwriteExistingDomain && s.LeafDomainLabel == "" {
		errs = append(errs, invalidConfig("overwrite_existing_domain true is only allowed with leaf_domain_label"))
	}
	if s.LeafDomainLabel != "" && !leafLabel.MatchString(s.LeafDomainLabel) {
		errs = append(errs, invalidConfig("leaf_domain_label %q must be 1 to 57 lowercase letters, digits and dashes, starting with a letter", s.LeafDomainLabel))
	}
	if lb == InternalLoadBalancer && s.LeafDomainLabel != "" {
		errs = append(errs, invalidConfig("load_balancer_type InternalLoadBalancer needs a custom certificate (ssl_cname, ssl_cert_pem_file, ssl_key_pem_file): "+
			"the Microsoft certificate leaf_domain_label %q asks for is not available on an internal load balancer", s.LeafDomainLabel))
	}
	return errs
}

// VNetConfig places a new cluster in an existing virtual network. Give every
// field or none.
type VNetConfig struct {
	// ResourceGroup is the virtual network's resource group (vnet_resourcegroup_name).
	ResourceGroup string
	// Name is the virtual network (vnet_name).
	Name string
	// SubnetName is the subnet the nodes join (subnet_name).
	SubnetName string
	// ServiceCIDR is the Kubernetes service address range, such as
	// "10.0.0.0/16" (service_cidr).
	ServiceCIDR string
	// DNSServiceIP is the cluster DNS address, inside ServiceCIDR (dns_service_ip).
	DNSServiceIP string
	// DockerBridgeCIDR is the Docker bridge address range (docker_bridge_cidr).
	DockerBridgeCIDR string
}

// IsZero reports whether no field is set.
func (v VNetConfig) IsZero() bool { return v == VNetConfig{} }

// SubnetID is the ARM id of the subnet, as the create payload's
// aksNetworkingConfiguration.subnetId carries it.
func (v VNetConfig) SubnetID(subscriptionID string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/virtualNetworks/%s/subnets/%s",
		subscriptionID, v.ResourceGroup, v.Name, v.SubnetName)
}

func (v VNetConfig) problems() []error {
	var errs []error
	var given, missing []string
	for _, f := range []struct{ name, value string }{
		{"vnet_name", v.Name}, {"vnet_resourcegroup_name", v.ResourceGroup}, {"subnet_name", v.SubnetName},
		{"service_cidr", v.ServiceCIDR}, {"dns_service_ip", v.DNSServiceIP}, {"docker_bridge_cidr", v.DockerBridgeCIDR},
	} {
		if f.value != "" {
			given = append(given, f.name)
		} else {
			missing = append(missing, f.name)
		}
	}
	if len(given) > 0 && len(missing) > 0 {
		errs = append(errs, invalidConfig("for custom vnet, please provide vnet name, vnet resource group, subnet name, service cidr, dns service ip and docker bridge cidr; %s given, %s missing",
			strings.Join(given, ", "), strings.Join(missing, ", ")))
	}
	var svc netip.Prefix
	var svcOK bool
	if v.ServiceCIDR != "" {
		p, err := netip.ParsePrefix(v.ServiceCIDR)
		if err != nil {
			errs = append(errs, invalidConfig("service_cidr %q is not a CIDR range such as 10.0.0.0/16", v.ServiceCIDR))
		} else {
			svc, svcOK = p.Masked(), true
		}
	}
	if v.DNSServiceIP != "" {
		ip, err := netip.ParseAddr(v.DNSServiceIP)
		switch {
		case err != nil:
			errs = append(errs, invalidConfig("dns_service_ip %q is not an IP address such as 10.0.0.10", v.DNSServiceIP))
		case svcOK && !svc.Contains(ip):
			errs = append(errs, invalidConfig("dns_service_ip %s is outside service_cidr %s", v.DNSServiceIP, v.ServiceCIDR))
		}
	}
	if v.DockerBridgeCIDR != "" {
		if _, err := netip.ParsePrefix(v.DockerBridgeCIDR); err != nil {
			errs = append(errs, invalidConfig("docker_bridge_cidr %q is not a CIDR range such as 172.17.0.1/16", v.DockerBridgeCIDR))
		}
	}
	return errs
}

// ProvisioningConfig describes a new AKS cluster, the parameters of
// AksCompute.provisioning_configuration. The zero value of every field means
// the service default; WithDefaults fills them in.
type ProvisioningConfig struct {
	// AgentCount is the number of nodes (agent_count): 3 by default, 1 for
	// DevTest. Negative counts are invalid.
	AgentCount int
	// VMSize is the node size (vm_size), a name of the vmCatalog with or
	// without "Standard_", in any case: Standard_D3_v2 by default.
	VMSize string
	// SSL is the TLS setting of the front end (ssl_* and leaf_domain_label).
	SSL SSLConfig
	// Location is the Azure region (location, sent as computeLocation);
	// empty means the workspace's region.
	Location string
	// VNet places the cluster in an existing virtual network.
	VNet VNetConfig
	// ClusterPurpose is FastProd (default), DenseProd or DevTest.
	ClusterPurpose ClusterPurpose
	// LoadBalancerType is PublicIp (default) or InternalLoadBalancer.
	LoadBalancerType LoadBalancerType
	// LoadBalancerSubnet is the subnet of an internal load balancer
	// (load_balancer_subnet): aks-subnet by default.
	LoadBalancerSubnet string
}

// WithDefaults returns c with every unset field resolved as the service
// resolves it: purpose FastProd; 3 agents (1 for DevTest); VM size
// Standard_D3_v2, and a known size spelled canonically; load balancer
// PublicIp; load balancer subnet aks-subnet. Location stays empty (the
// workspace's region is not known here); invalid values are kept as given.
func (c ProvisioningConfig) WithDefaults() ProvisioningConfig {
	c.ClusterPurpose = c.ClusterPurpose.orDefault()
	if c.AgentCount == 0 {
		c.AgentCount = DefaultAgentCount
		if c.ClusterPurpose == DevTest {
			c.AgentCount = DefaultDevTestAgentCount
		}
	}
	if c.VMSize == "" {
		c.VMSize = DefaultVMSize
	} else if s, ok := LookupVMSize(c.VMSize); ok {
		c.VMSize = s.Name
	}
	if c.LoadBalancerType == "" {
		c.LoadBalancerType = PublicIP
	}
	if c.LoadBalancerSubnet == "" {
		c.LoadBalancerSubnet = DefaultLoadBalancerSubnet
	}
	return c
}

// Validate reports every rule c breaks, as one error joining an
// errcode.InvalidArgument error per rule: the SDK's checks (agent count
// positive; TLS certificate fields together, leaf domain label exclusive
// with them, overwrite only with a label; virtual network all or none) and
// the service's (known VM size, cluster purpose and load balancer type;
// address ranges that parse; a Microsoft certificate is not available on an
// internal load balancer; FastProd and DenseProd need at least 3 nodes and
// 12 vCPUs). It returns nil for a valid c. Advice that is not an error comes
// from Warnings.
func (c ProvisioningConfig) Validate() error {
	_, errs := c.check()
	return errors.Join(errs...)
}

// Warnings returns advice about c that does not make it invalid: a DevTest
// cluster with fewer than 2 vCPUs.
func (c ProvisioningConfig) Warnings() []Warning {
	w, _ := c.check()
	return w
}

func (c ProvisioningConfig) check() ([]Warning, []error) {
	var errs []error
	if c.AgentCount < 0 {
		errs = append(errs, invalidConfig("agent_count %d must be a positive integer", c.AgentCount))
	}
	size, sizeOK := LookupVMSize(DefaultVMSize)
	if c.VMSize != "" {
		if size, sizeOK = LookupVMSize(c.VMSize); !sizeOK {
			errs = append(errs, invalidConfig("vm_size %q is not a VM size aksml knows (compute.VMSizes lists them)", c.VMSize))
		}
	}
	if !c.ClusterPurpose.valid() {
		errs = append(errs, invalidConfig("cluster_purpose %q must be FastProd, DenseProd or DevTest", c.ClusterPurpose))
	}
	if !c.LoadBalancerType.valid() {
		errs = append(errs, invalidConfig("load_balancer_type %q must be PublicIp or InternalLoadBalancer", c.LoadBalancerType))
	}
	errs = append(errs, c.SSL.problems(c.LoadBalancerType)...)
	errs = append(errs, c.VNet.problems()...)

	var warnings []Warning
	if c.AgentCount >= 0 && sizeOK && c.ClusterPurpose.valid() {
		d := c.WithDefaults()
		vcpus := d.AgentCount * size.VCPUs
		w, e := checkCapacity(d.ClusterPurpose, d.AgentCount, vcpus,
			fmt.Sprintf("agent_count %d", d.AgentCount),
			fmt.Sprintf("agent_count %d × vm_size %s (%d vCPUs) = %d vCPUs", d.AgentCount, size.Name, size.VCPUs, vcpus))
		warnings, errs = w, append(errs, e...)
	}
	return warnings, errs
}

// ValidateCapacity applies the service's capacity rules to a cluster of
// nodes nodes with vcpus vCPUs in all, for purpose (zero means FastProd):
// FastProd and DenseProd need at least 3 nodes and 12 vCPUs, DevTest at least
// 1 node. It returns the errors (errcode.InvalidArgument, joined) and, for a
// DevTest cluster under 2 vCPUs, a warning. Attaching an existing cluster
// uses it with the nodes the cluster reports.
func ValidateCapacity(purpose ClusterPurpose, nodes, vcpus int) ([]Warning, error) {
	if !purpose.valid() {
		return nil, invalidConfig("cluster_purpose %q must be FastProd, DenseProd or DevTest", purpose)
	}
	w, errs := checkCapacity(purpose.orDefault(), nodes, vcpus,
		fmt.Sprintf("the cluster's %d nodes", nodes), fmt.Sprintf("the cluster's %d vCPUs", vcpus))
	return w, errors.Join(errs...)
}

func checkCapacity(purpose ClusterPurpose, nodes, vcpus int, nodesDesc, vcpusDesc string) ([]Warning, []error) {
	var errs []error
	var warnings []Warning
	switch purpose {
	case FastProd, DenseProd:
		if nodes < MinProductionNodes {
			errs = append(errs, invalidConfig("%s is below the %d nodes a %s cluster needs", nodesDesc, MinProductionNodes, purpose))
		}
		if vcpus < MinProductionVCPUs {
			errs = append(errs, invalidConfig("%s is below the %d vCPUs a %s cluster needs", vcpusDesc, MinProductionVCPUs, purpose))
		}
	case DevTest:
		if nodes < MinDevTestNodes {
			errs = append(errs, invalidConfig("%s is below the %d node a %s cluster needs", nodesDesc, MinDevTestNodes, purpose))
		} else if vcpus < RecommendedDevTestVCPUs {
			warnings = append(warnings, Warning{Field: "agent_count",
				Message: fmt.Sprintf("%s is below the %d vCPUs Azure recommends for a %s cluster", vcpusDesc, RecommendedDevTestVCPUs, purpose)})
		}
	}
	return warnings, errs
}

// AttachConfig names an existing cluster to attach, the parameters of
// AksCompute.attach_configuration, plus a kubeconfig file and context for
// any Kubernetes cluster. Identify an AKS cluster by ResourceID, or by
// ResourceGroup and ClusterName (in the workspace's subscription), never
// both ways; with Kubeconfig, neither is required.
type AttachConfig struct {
	// ResourceID is the AKS cluster's ARM id (resource_id):
	// /subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.ContainerService/managedClusters/{name}.
	ResourceID string
	// ResourceGroup is the cluster's resource group (resource_group).
	ResourceGroup string
	// ClusterName is the AKS cluster's name (cluster_name).
	ClusterName string
	// ClusterPurpose is FastProd (default), DenseProd or DevTest.
	ClusterPurpose ClusterPurpose
	// LoadBalancerType is PublicIp (default) or InternalLoadBalancer.
	LoadBalancerType LoadBalancerType
	// LoadBalancerSubnet is the internal load balancer's subnet
	// (load_balancer_subnet); only with InternalLoadBalancer, aks-subnet by
	// default there.
	LoadBalancerSubnet string
	// SSL is the TLS setting of the front end (enable_ssl).
	SSL SSLConfig
	// Kubeconfig is the path of a kubeconfig file: attach any cluster, not
	// only AKS. An aksml extension.
	Kubeconfig string
	// Context is the kubeconfig context to use; empty means its current
	// context. Only with Kubeconfig.
	Context string
}

// WithDefaults returns c with purpose FastProd and load balancer PublicIp
// when unset, and subnet aks-subnet for an internal load balancer without
// one.
func (c AttachConfig) WithDefaults() AttachConfig {
	c.ClusterPurpose = c.ClusterPurpose.orDefault()
	if c.LoadBalancerType == "" {
		c.LoadBalancerType = PublicIP
	}
	if c.LoadBalancerType == InternalLoadBalancer && c.LoadBalancerSubnet == "" {
		c.LoadBalancerSubnet = DefaultLoadBalancerSubnet
	}
	return c
}

// Validate reports every rule c breaks, as one error joining an
// errcode.InvalidArgument error per rule: a well-formed AKS resource id (9
// segments, provider Microsoft.ContainerService) not combined with a resource
// group or cluster name; otherwise both of those unless a kubeconfig is
// given; a context only with a kubeconfig; a known purpose; load balancer
// PublicIp or InternalLoadBalancer, a subnet only with the latter; and the
// TLS rules of ProvisioningConfig.
func (c AttachConfig) Validate() error {
	var errs []error
	if c.ResourceID != "" {
		if _, err := ParseAKSResourceID(c.ResourceID); err != nil {
			errs = append(errs, err)
		}
		if c.ResourceGroup != "" || c.ClusterName != "" {
			errs = append(errs, invalidConfig("resource_id cannot be combined with resource_group %q or cluster_name %q: identify the cluster one way",
				c.ResourceGroup, c.ClusterName))
		}
	} else if c.Kubeconfig == "" || c.ResourceGroup != "" || c.ClusterName != "" {
		var missing []string
		if c.ResourceGroup == "" {
			missing = append(missing, "resource_group")
		}
		if c.ClusterName == "" {
			missing = append(missing, "cluster_name")
		}
		if missing != nil {
			errs = append(errs, invalidConfig("resource_group and cluster_name are both required without resource_id or kubeconfig; %s missing",
				strings.Join(missing, " and ")))
		}
	}
	if c.Context != "" && c.Kubeconfig == "" {
		errs = append(errs, invalidConfig("context %q is only allowed with kubeconfig", c.Context))
	}
	if !c.ClusterPurpose.valid() {
		errs = append(errs, invalidConfig("cluster_purpose %q must be FastProd, DenseProd or DevTest", c.ClusterPurpose))
	}
	if !c.LoadBalancerType.valid() {
		errs = append(errs, invalidConfig("load_balancer_type %q must be PublicIp or InternalLoadBalancer", c.LoadBalancerType))
	} else if c.LoadBalancerSubnet != "" && c.LoadBalancerType != InternalLoadBalancer {
		errs = append(errs, invalidConfig("load_balancer_subnet %q is only allowed with load_balancer_type InternalLoadBalancer, not %s",
			c.LoadBalancerSubnet, orDefaultString(string(c.LoadBalancerType), "PublicIp (the default)")))
	}
	errs = append(errs, c.SSL.problems(c.LoadBalancerType)...)
	return errors.Join(errs...)
}

// AKSResourceID returns the ARM id of the AKS cluster c names: ResourceID
// when given, else the id built from ResourceGroup and ClusterName in
// subscriptionID the way the SDK builds it. It is empty when c names the
// cluster by kubeconfig only.
func (c AttachConfig) AKSResourceID(subscriptionID string) string {
	if c.ResourceID != "" {
		return c.ResourceID
	}
	if c.ResourceGroup == "" && c.ClusterName == "" {
		return ""
	}
	return AKSResource{SubscriptionID: subscriptionID, ResourceGroup: c.ResourceGroup, ClusterName: c.ClusterName}.String()
}

// AKSResource is the parsed ARM id of an AKS cluster: the subscription and
// resource group it lives in and its name.
type AKSResource struct {
	SubscriptionID string
	ResourceGroup  string
	ClusterName    string
}

// String is the id in the form the SDK builds:
// /subscriptions/{s}/resourcegroups/{g}/providers/Microsoft.ContainerService/managedClusters/{name}.
func (r AKSResource) String() string {
	return fmt.Sprintf("/subscriptions/%s/resourcegroups/%s/providers/Microsoft.ContainerService/managedClusters/%s",
		r.SubscriptionID, r.ResourceGroup, r.ClusterName)
}

// ParseAKSResourceID parses an AKS cluster's ARM id as attach_configuration
// checks it: split on "/" it has 9 segments and segment 6 is
// Microsoft.ContainerService (the SDK's two rules); aksml also requires the
// subscriptions/resourcegroups/providers/managedClusters keywords (any case)
// and non-empty names. The error is an errcode.InvalidArgument.
func ParseAKSResourceID(id string) (AKSResource, error) {
	const form = "/subscriptions/{subscription}/resourcegroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}"
	parts := strings.Split(id, "/")
	if len(parts) != 9 {
		return AKSResource{}, invalidConfig("resource_id %q must have 9 segments when split on \"/\", as in %s; it has %d", id, form, len(parts))
	}
	if !strings.EqualFold(parts[6], "Microsoft.ContainerService") {
		return AKSResource{}, invalidConfig("resource_id %q: resource type %q does not match for AKS (want Microsoft.ContainerService)", id, parts[6])
	}
	if parts[0] != "" || !strings.EqualFold(parts[1], "subscriptions") || !strings.EqualFold(parts[3], "resourcegroups") ||
		!strings.EqualFold(parts[5], "providers") || !strings.EqualFold(parts[7], "managedClusters") ||
		parts[2] == "" || parts[4] == "" || parts[8] == "" {
		return AKSResource{}, invalidConfig("resource_id %q is not of the form %s", id, form)
	}
	return AKSResource{SubscriptionID: parts[2], ResourceGroup: parts[4], ClusterName: parts[8]}, nil
}

// invalid returns an errcode.InvalidArgument error in the SDK's wording.
func invalidConfig(format string, args ...any) error {
	return errcode.Errorf(errcode.InvalidArgument, "Invalid configuration, "+format+".", args...)
}

func orDefaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
