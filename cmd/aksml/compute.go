package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube"
)

// targetView is a compute target as show and list print it.
type targetView struct {
	Name              string `json:"name"`
	ComputeType       string `json:"computeType"`
	Backend           string `json:"backend,omitempty"`
	IsAttached        bool   `json:"isAttachedCompute"`
	ResourceID        string `json:"resourceId,omitempty"`
	ProvisioningState string `json:"provisioningState"`
	Error             string `json:"error,omitempty"`
	AgentCount        int    `json:"agentCount,omitempty"`
	VMSize            string `json:"agentVmSize,omitempty"`
	ClusterPurpose    string `json:"clusterPurpose,omitempty"`
	ScoringBaseURL    string `json:"scoringBaseUrl,omitempty"`
	CreatedOn         string `json:"createdOn"`
	// SSL and ClusterFQDN are Azure's sslConfiguration and clusterFqdn.
	SSL         *sslView `json:"sslConfiguration,omitempty"`
	ClusterFQDN string   `json:"clusterFqdn,omitempty"`
	// The certificate the front end serves and advice about the target
	// (aksml's, not Azure's).
	CertificateNotAfter string   `json:"certificateNotAfter,omitempty"`
	CertificateSHA256   string   `json:"certificateSha256,omitempty"`
	Warnings            []string `json:"warnings,omitempty"`
}

var targetColumns = []column{{"Name", "name"}, {"Backend", "backend"}, {"ProvisioningState", "provisioningState"}, {"AgentCount", "agentCount"}, {"AgentVmSize", "agentVmSize"}, {"ScoringBaseUrl", "scoringBaseUrl"}}

// targetViewOf reads a target's state from its cluster when it is
// reachable; a target whose in-process cluster is gone is Stale.
func (a *app) targetViewOf(ctx context.Context, rec compute.Record) targetView {
	v := targetView{Name: rec.Name, ComputeType: rec.ComputeType, Backend: rec.Backend, IsAttached: rec.IsAttached,
		ResourceID: rec.ResourceID, ProvisioningState: string(rec.ProvisioningState), CreatedOn: rec.CreatedOn.UTC().Format(time.RFC3339),
		ClusterFQDN: rec.ClusterFQDN}
	if rec.ComputeType == "AKS" {
		v.SSL = sslViewOf(sslOf(rec))
	}
	if p := rec.Provisioning; p != nil {
		v.AgentCount, v.VMSize, v.ClusterPurpose = p.AgentCount, p.VMSize, string(p.ClusterPurpose)
	}
	t, err := a.target(ctx, rec.Name)
	if err != nil {
		if errors.Is(staleOr(err), errStale) {
			v.ProvisioningState = stateStale
		} else {
			v.ProvisioningState = string(compute.ProvisioningUnknown)
		}
		v.Error = err.Error()
		return v
	}
	st, err := t.Cluster().Status(ctx)
	if err != nil {
		v.ProvisioningState, v.Error = string(compute.ProvisioningUnknown), err.Error()
		return v
	}
	v.ProvisioningState = string(st.State)
	v.ScoringBaseURL = st.ScoringBaseURL
	if v.AgentCount == 0 {
		v.AgentCount, v.VMSize, v.ClusterPurpose = st.Shape.AgentCount, st.Shape.VMSize, st.Shape.Purpose
	}
	if len(st.Errors) > 0 {
		v.Error = fmt.Sprint(st.Errors)
	}
	if st.TLS != nil {
		v.CertificateNotAfter, v.CertificateSHA256 = certTime(st.TLS.NotAfter), st.TLS.SHA256
	}
	if ws, err := t.Warnings(ctx); err == nil {
		for _, w := range ws {
			v.Warnings = append(v.Warnings, w.Message)
		}
	}
	return v
}

func (a *app) computeCmd() *cobra.Command {
	var (
		name, vmSize, purpose, location, lbType, lbSubnet          string
		agents                                                     int
		vnetRG, vnetName, subnet, serviceCIDR, dnsIP, dockerBridge string
		local, noWait                                              bool
		ssl                                                        sslFlags
	)
	createAKS := &cobra.Command{
		Use:   "aks",
		Short: "Create an AKS compute target (--local: on the workspace's local cluster)",
		Long: `Create an AKS compute target (AksCompute.create).

With --local the target is the workspace's local cluster, started with
'aksml local start': a real Kubernetes control plane whose nodes run pods as
processes on this machine. It outlives each command, so every later command,
and any Go program opening the same workspace, deploys to it.

Without --local aksml would have to provision a cluster in Azure, which the
shell does not do: the command is refused with a hint. Attach an existing
cluster instead (computetarget attach aks --kubeconfig), or create AKS
clusters from Go (package kube/aks).

TLS on the scoring URIs (enable_ssl): give your certificate with
--ssl-cname, --ssl-cert-file and --ssl-key-file, or --ssl-leaf-domain-label
for a certificate from the workspace CA (see docs/tls.md).`,
		Example: example("aksml local start && aksml computetarget create aks -n dev --local",
			"aksml computetarget create aks -n dev --local --cluster-purpose DevTest",
			"aksml computetarget create aks -n dev --local --ssl-leaf-domain-label myapp"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg := compute.ProvisioningConfig{AgentCount: agents, VMSize: vmSize, Location: location, LoadBalancerSubnet: lbSubnet,
				VNet: compute.VNetConfig{ResourceGroup: vnetRG, Name: vnetName, SubnetName: subnet, ServiceCIDR: serviceCIDR, DNSServiceIP: dnsIP, DockerBridgeCIDR: dockerBridge},
				SSL:  ssl.config()}
			var err1, err2 error
			cfg.ClusterPurpose, err1 = compute.ParseClusterPurpose(purpose)
			cfg.LoadBalancerType, err2 = compute.ParseLoadBalancerType(lbType)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			ws, err := a.workspace(ctx)
			if err != nil {
				return err
			}
			if local {
				t, err := a.attachLocal(ctx, name, cfg.SSL)
				if err != nil {
					return err
				}
				return a.print(view{value: a.targetViewOf(ctx, t.Record()), columns: targetColumns})
			}
			if a.provider == nil {
				return errcode.Errorf(errcode.FailedPrecondition,
					"computetarget create aks: aksml does not provision clusters in Azure from the shell; use --local for the workspace's local cluster (start it with `aksml local start`), or attach a cluster with `aksml computetarget attach aks -n %s --kubeconfig PATH`", name)
			}
			t, err := compute.Create(ctx, ws, name, cfg, &compute.CreateOptions{Provider: a.provider, Progress: a.progressWriter()})
			if err != nil {
				return err
			}
			if !noWait {
				if err := t.Wait(ctx); err != nil {
					return err
				}
			}
			return a.print(view{value: a.targetViewOf(ctx, t.Record()), columns: targetColumns})
		},
	}
	f := createAKS.Flags()
	f.StringVarP(&name, "name", "n", "", "compute target name")
	f.BoolVar(&local, "local", false, "make the workspace's local cluster (aksml local start) the target")
	f.IntVarP(&agents, "agent-count", "a", 0, "number of nodes (3; 1 for DevTest)")
	f.StringVarP(&vmSize, "vm-size", "s", "", "node VM size (Standard_D3_v2)")
	f.StringVar(&purpose, "cluster-purpose", "", "FastProd, DenseProd or DevTest (FastProd)")
	f.StringVarP(&location, "location", "l", "", "Azure region")
	f.StringVar(&lbType, "load-balancer-type", "", "PublicIp or InternalLoadBalancer (PublicIp)")
	f.StringVar(&lbSubnet, "load-balancer-subnet", "", "subnet of an internal load balancer (aks-subnet)")
	f.StringVar(&vnetRG, "vnet-resourcegroup-name", "", "virtual network's resource group")
	f.StringVar(&vnetName, "vnet-name", "", "virtual network")
	f.StringVar(&subnet, "subnet-name", "", "subnet the nodes join")
	f.StringVar(&serviceCIDR, "service-cidr", "", "Kubernetes service address range")
	f.StringVar(&dnsIP, "dns-service-ip", "", "cluster DNS address inside the service range")
	f.StringVar(&dockerBridge, "docker-bridge-cidr", "", "Docker bridge address range")
	f.BoolVar(&noWait, "no-wait", false, "return at once, with the provisioning state")
	ssl.add(f, false)
	required(createAKS, "name")

	var resourceID, kubeconfig, kctx string
	var attachSSL sslFlags
	attachAKS := &cobra.Command{
		Use:   "aks",
		Short: "Attach an existing cluster by kubeconfig (or an AKS resource id) as a compute target",
		Example: example("aksml computetarget attach aks -n prod --kubeconfig ~/.kube/config --context prod",
			"aksml computetarget attach aks -n dev --kubeconfig ./.aksml/local/admin.kubeconfig",
			"aksml computetarget attach aks -n prod --kubeconfig ~/.kube/config --ssl-cname www.contoso.com --ssl-cert-file cert.pem --ssl-key-file key.pem"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ws, err := a.workspace(ctx)
			if err != nil {
				return err
			}
			cfg := compute.AttachConfig{ResourceID: resourceID, Kubeconfig: kubeconfig, Context: kctx, SSL: attachSSL.config()}
			if resourceID != "" && kubeconfig == "" {
				return errcode.Errorf(errcode.Unimplemented,
					"computetarget attach aks -i: attaching AKS by resource id needs Azure credentials the shell does not use; attach it by kubeconfig (az aks get-credentials, then --kubeconfig)")
			}
			p := a.provider
			if p == nil {
				p = kube.New(nil)
			}
			t, err := compute.Attach(ctx, ws, name, cfg, &compute.CreateOptions{Provider: p, Progress: a.progressWriter()})
			if err != nil {
				return err
			}
			if err := t.Wait(ctx); err != nil {
				return err
			}
			return a.print(view{value: a.targetViewOf(ctx, t.Record()), columns: targetColumns})
		},
	}
	attachAKS.Flags().StringVarP(&name, "name", "n", "", "compute target name")
	attachAKS.Flags().StringVarP(&resourceID, "compute-resource-id", "i", "", "AKS cluster's ARM id")
	attachAKS.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster")
	attachAKS.Flags().StringVar(&kctx, "context", "", "kubeconfig context (default: its current one)")
	attachSSL.add(attachAKS.Flags(), false)
	required(attachAKS, "name")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List compute targets with their state (Stale: the process that ran it exited)",
		Example: example("aksml computetarget list -o table"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ws, err := a.workspace(ctx)
			if err != nil {
				return err
			}
			recs, err := compute.List(ctx, ws)
			if err != nil {
				return err
			}
			out := []targetView{}
			for _, r := range recs {
				out = append(out, a.targetViewOf(ctx, r))
			}
			return a.print(view{value: out, columns: targetColumns})
		},
	}
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a compute target",
		Example: example("aksml computetarget show -n dev"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ws, err := a.workspace(ctx)
			if err != nil {
				return err
			}
			rec, err := compute.Lookup(ctx, ws, name)
			if err != nil {
				return err
			}
			return a.print(view{value: a.targetViewOf(ctx, rec), columns: targetColumns})
		},
	}
	show.Flags().StringVarP(&name, "name", "n", "", "compute target name")
	required(show, "name")

	detach := &cobra.Command{
		Use:     "detach",
		Short:   "Forget an attached compute target; the cluster and its services stay",
		Example: example("aksml computetarget detach -n prod"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.target(cmd.Context(), name)
			if err != nil {
				return err
			}
			return t.Detach(cmd.Context())
		},
	}
	detach.Flags().StringVarP(&name, "name", "n", "", "compute target name")
	required(detach, "name")

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a compute target aksml created (a stale one is only removed from the workspace)",
		Example: example("aksml computetarget delete -n dev"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := a.target(ctx, name)
			if err != nil {
				if errors.Is(staleOr(err), errStale) {
					return compute.Forget(ctx, a.ws, name)
				}
				return err
			}
			if t.Record().IsAttached {
				return t.Detach(ctx)
			}
			return t.Delete(ctx)
		},
	}
	del.Flags().StringVarP(&name, "name", "n", "", "compute target name")
	required(del, "name")

	create := group("create", "Create a compute target", createAKS)
	attach := group("attach", "Attach a cluster as a compute target", attachAKS)
	upd := group("update", "Update a compute target", a.updateAKSCmd())
	return group("computetarget", "Create, attach, update, list, show, detach and delete compute targets", create, attach, upd, list, show, detach, del)
}

var _ driver.Provider = (*kube.Provider)(nil)
