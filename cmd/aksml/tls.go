package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/errcode"
)

// sslFlags are the enable_ssl flags of computetarget create aks, attach
// aks and update aks, named as az ml names them.
type sslFlags struct {
	cname, certFile, keyFile, leafLabel string
	overwrite                           bool
	// disable and renew exist on update aks only.
	disable, renew bool
}

// add registers the flags on f; update adds --ssl-disable and --ssl-renew.
func (s *sslFlags) add(f *pflag.FlagSet, update bool) {
	f.StringVar(&s.cname, "ssl-cname", "", "DNS name of your certificate; with --ssl-cert-file and --ssl-key-file")
	f.StringVar(&s.certFile, "ssl-cert-file", "", "PEM certificate (chain, leaf first) for --ssl-cname")
	f.StringVar(&s.keyFile, "ssl-key-file", "", "PEM private key of --ssl-cert-file")
	f.StringVar(&s.leafLabel, "ssl-leaf-domain-label", "", "serve a certificate from the workspace CA for LABEL######.REGION.cloudapp.azure.com")
	f.BoolVar(&s.overwrite, "ssl-overwrite-domain", false, "replace an existing leaf domain of the same label")
	// The SDK's name for it (overwrite_existing_domain), kept as a synonym.
	f.BoolVar(&s.overwrite, "ssl-overwrite-existing-domain", false, "same as --ssl-overwrite-domain")
	_ = f.MarkHidden("ssl-overwrite-existing-domain")
	if update {
		f.BoolVar(&s.disable, "ssl-disable", false, "turn TLS off: the front end serves plain HTTP again")
		f.BoolVar(&s.renew, "ssl-renew", false, "issue a new certificate for the target's leaf domain (its TLS must be Auto)")
	}
}

// config is the SSLConfig the create and attach flags give.
func (s *sslFlags) config() compute.SSLConfig {
	return compute.SSLConfig{CName: s.cname, CertFile: s.certFile, KeyFile: s.keyFile,
		LeafDomainLabel: s.leafLabel, OverwriteExistingDomain: s.overwrite}
}

// update is the ssl_configuration of an update: nil when no ssl flag is
// given, the zero SSLConfig for --ssl-disable, the target's own leaf
// domain for --ssl-renew.
func (s *sslFlags) update(current compute.SSLConfig) (*compute.SSLConfig, error) {
	cfg := s.config()
	switch {
	case s.disable && s.renew:
		return nil, errcode.New(errcode.InvalidArgument, "--ssl-disable and --ssl-renew cannot be combined: turn TLS off, or renew its certificate")
	case s.disable && cfg.Enabled():
		return nil, errcode.Errorf(errcode.InvalidArgument, "--ssl-disable cannot be combined with %s: turn TLS off, or give a new setting", strings.Join(s.givenNames(), ", "))
	case s.disable:
		return &compute.SSLConfig{}, nil
	case s.renew && cfg.Enabled() && (cfg.LeafDomainLabel == "" || cfg.LeafDomainLabel != current.LeafDomainLabel || cfg.CName != "" || cfg.CertFile != "" || cfg.KeyFile != ""):
		return nil, errcode.Errorf(errcode.InvalidArgument, "--ssl-renew renews the target's own leaf domain certificate; it cannot be combined with %s", strings.Join(s.givenNames(), ", "))
	case s.renew && current.Status() != "Auto":
		return nil, errcode.Errorf(errcode.FailedPrecondition, "--ssl-renew: the target's TLS is %s; only a certificate issued for --ssl-leaf-domain-label (status Auto) is renewed", current.Status())
	case s.renew:
		return &current, nil
	case cfg.Enabled():
		return &cfg, nil
	}
	return nil, nil
}

func (s *sslFlags) givenNames() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"--ssl-cname", s.cname != ""}, {"--ssl-cert-file", s.certFile != ""}, {"--ssl-key-file", s.keyFile != ""},
		{"--ssl-leaf-domain-label", s.leafLabel != ""}, {"--ssl-overwrite-domain", s.overwrite}} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// sslOf is the TLS setting recorded for a target.
func sslOf(rec compute.Record) compute.SSLConfig {
	switch {
	case rec.Provisioning != nil:
		return rec.Provisioning.SSL
	case rec.Attach != nil:
		return rec.Attach.SSL
	}
	return compute.SSLConfig{}
}

// sslView is a target's sslConfiguration as Azure serializes it. The
// certificate and key themselves (Azure's cert and key) are never printed.
type sslView struct {
	Status                  string `json:"status"`
	CName                   string `json:"cname,omitempty"`
	LeafDomainLabel         string `json:"leafDomainLabel,omitempty"`
	OverwriteExistingDomain bool   `json:"overwriteExistingDomain,omitempty"`
}

func sslViewOf(s compute.SSLConfig) *sslView {
	return &sslView{Status: s.Status(), CName: s.CName, LeafDomainLabel: s.LeafDomainLabel, OverwriteExistingDomain: s.OverwriteExistingDomain}
}

func (a *app) updateAKSCmd() *cobra.Command {
	var (
		name, lbType, lbSubnet string
		ssl                    sslFlags
	)
	cmd := &cobra.Command{
		Use:   "aks",
		Short: "Update an AKS compute target: its TLS certificate, or TLS off",
		Long: `Update an AKS compute target (AksCompute.update with an
AksUpdateConfiguration).

Give a new certificate (--ssl-cname, --ssl-cert-file, --ssl-key-file), a
leaf domain label (--ssl-leaf-domain-label), --ssl-renew to issue a new
certificate for the target's leaf domain, or --ssl-disable to serve plain
HTTP again. The files are read and checked before anything changes. A new
certificate applies to new connections at once; replicas are not
restarted and requests in flight finish.`,
		Example: example("aksml computetarget update aks -n prod --ssl-cname www.contoso.com --ssl-cert-file cert.pem --ssl-key-file key.pem",
			"aksml computetarget update aks -n dev --ssl-renew",
			"aksml computetarget update aks -n dev --ssl-disable"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := a.target(ctx, name)
			if err != nil {
				return err
			}
			cfg := compute.UpdateConfig{LoadBalancerSubnet: lbSubnet}
			if lbType != "" {
				if cfg.LoadBalancerType, err = compute.ParseLoadBalancerType(lbType); err != nil {
					return err
				}
			}
			if cfg.SSL, err = ssl.update(sslOf(t.Record())); err != nil {
				return err
			}
			if err := t.Update(ctx, cfg); err != nil {
				return err
			}
			return a.print(view{value: a.targetViewOf(ctx, t.Record()), columns: targetColumns})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&name, "name", "n", "", "compute target name")
	f.StringVar(&lbType, "load-balancer-type", "", "PublicIp or InternalLoadBalancer (not supported on an existing cluster)")
	f.StringVar(&lbSubnet, "load-balancer-subnet", "", "subnet of an internal load balancer (not supported on an existing cluster)")
	ssl.add(f, true)
	required(cmd, "name")
	return cmd
}

// caBundleCmd is workspace ca-bundle: the CA is the workspace's, shared by
// every target whose certificate it issued, so the command sits with the
// workspace rather than with one compute target.
func (a *app) caBundleCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "ca-bundle",
		Short: "Print the workspace CA's certificate (PEM), to trust the certificates it issues (--ssl-leaf-domain-label)",
		Long: `Print the PEM certificate of the workspace's CA, or write it to a file
with -f. Targets created with --ssl-leaf-domain-label serve a certificate
this CA issued; aksml's own clients trust it already, other clients need it:

  aksml workspace ca-bundle -f ca.pem
  curl --cacert ca.pem --resolve NAME:PORT:127.0.0.1 https://NAME:PORT/api/v1/service/SVC/score ...

The CA is made on first use and kept in the workspace. Output is PEM
whatever -o says.`,
		Example: example("aksml workspace ca-bundle -f ca.pem", "aksml workspace ca-bundle > ca.pem"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ws, err := a.workspace(ctx)
			if err != nil {
				return err
			}
			pem, err := compute.CABundle(ctx, ws)
			if err != nil {
				return err
			}
			if file == "" {
				_, err := a.stdout.Write(pem)
				return err
			}
			if err := os.WriteFile(file, pem, 0o644); err != nil {
				return errcode.Errorf(errcode.InvalidArgument, "--file %q: %v", file, err)
			}
			fmt.Fprintf(a.stderr, "wrote the workspace CA certificate to %s\n", file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "write the PEM to this file instead of stdout")
	return cmd
}

// certTime formats a certificate's expiry for show.
func certTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
