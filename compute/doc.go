// Package compute describes where models run: Azure Kubernetes Service
// compute targets and any other Kubernetes cluster, mirroring the Azure ML
// SDK v1 AksCompute and ComputeTarget classes.
//
// Its configuration types are plain values. ProvisioningConfig mirrors
// AksCompute.provisioning_configuration (a new cluster: agent count, VM size,
// TLS, virtual network, cluster purpose, load balancer); AttachConfig mirrors
// AksCompute.attach_configuration (an existing AKS cluster by resource id or
// by resource group and name) and, beyond Azure, attaches any cluster through
// a kubeconfig file and context. Their zero fields mean "use the default",
// as None does in the SDK; WithDefaults resolves them.
//
// Validate reports every broken rule at once, as one error joining one
// errcode.InvalidArgument error per rule. Each message names the SDK
// parameter (agent_count, ssl_cname, vnet_name, ...), the value and the rule,
// in the SDK's "Invalid configuration, ..." wording. Besides the SDK's
// client-side checks, the package applies the rules the Azure service
// enforced on its side: a known VM size and at least 3 nodes and 12 vCPUs
// for a production cluster (in ProvisioningConfig.Validate, and in
// ValidateCapacity for a cluster being attached), and a target name of 3 to
// 24 letters, digits and dashes (ValidateName). Advice that is not an error,
// such as a dev-test cluster under 2 vCPUs, comes back from Warnings.
//
// A target's SSLConfig (enable_ssl) reaches its cluster's front end, which
// then serves HTTPS at https://CNAME[:PORT]: your own certificate, read and
// checked before anything is made (the key matches, CName is among its
// names, it is valid now), or, for LeafDomainLabel, a certificate for
// LABEL######.REGION.cloudapp.azure.com issued by the workspace's own CA
// (CABundle; a workspace record shared by every process). Target.Update
// (AksCompute.update) rotates it without restarting replicas or failing a
// request, or turns TLS off; Target.Warnings says when it expires within
// 30 days. Target.Client is the HTTP client the library scores with: it
// dials the front end's address for a CNAME that is in no DNS and trusts
// the workspace CA.
//
// The VM-size catalog (LookupVMSize, VMSizes) gives the vCPUs, memory, GPUs
// and FPGAs of the D-series v2 and v3 sizes and of the GPU and FPGA sizes
// Azure ML documents (NC, NCv3, ND, PB6s). Backends size simulated nodes and
// choose GPU or FPGA node selectors from it.
package compute
