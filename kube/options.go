package kube

import (
	"log/slog"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of Options.
const (
	// DefaultNamespace holds a service whose deploy config names no
	// namespace.
	DefaultNamespace = "azureml"
	// DefaultFieldManager is the server-side apply field manager of every
	// object the driver writes.
	DefaultFieldManager = "aksml"
	// DefaultImage runs a replica whose template names no image: the
	// scoring server of cmd/aksml-score. Real deployments pass the image
	// built for the service by digest (ReplicaTemplate.Image).
	DefaultImage = "aksml/aksml-score:latest"
	// DefaultFPGAResource is the extended resource FPGA replicas request.
	// The resource name on AKS is unconfirmed (reference §1); this is the
	// one Azure Stack Edge documents.
	DefaultFPGAResource = "microsoft.com/fpga_catapult"
	// DefaultCrashLoopRestarts is how many restarts of a container in
	// CrashLoopBackOff fail the service.
	DefaultCrashLoopRestarts = 3
	// DefaultImagePullGrace is how long a pod may sit in ImagePullBackOff
	// or ErrImagePull before the service fails.
	DefaultImagePullGrace = 2 * time.Minute
	// DefaultUnschedulableTimeout is how long pods may stay unschedulable
	// before the service fails (reference §2: five minutes).
	DefaultUnschedulableTimeout = 5 * time.Minute
	// DefaultProgressDeadline is each Deployment's progressDeadlineSeconds.
	DefaultProgressDeadline = 10 * time.Minute
)

// Options configure a Provider. The zero value (or nil) gives the
// defaults above.
type Options struct {
	// Clock judges how long pods have been crashing, pulling or
	// unschedulable. Default: the real clock.
	Clock clock.PassiveClock
	// Logger receives the driver's own events (never keys). Default:
	// discard.
	Logger *slog.Logger
	// Namespace is where a service goes when its spec names none; default
	// DefaultNamespace. It is created when missing and never deleted.
	Namespace string
	// FieldManager for server-side apply; default DefaultFieldManager.
	FieldManager string
	// DefaultImage is the image of replicas without one; default
	// DefaultImage.
	DefaultImage string
	// FPGAResource and FPGANodeSelector place FPGA replicas; defaults
	// DefaultFPGAResource and no selector (configurable because the AKS
	// names are unconfirmed).
	FPGAResource     string
	FPGANodeSelector map[string]string
	// CrashLoopRestarts, ImagePullGrace and UnschedulableTimeout are the
	// thresholds past which a service is Failed; ProgressDeadline is the
	// Deployments' progress deadline. Defaults as the constants above.
	CrashLoopRestarts    int
	ImagePullGrace       time.Duration
	UnschedulableTimeout time.Duration
	ProgressDeadline     time.Duration
	// ScoringBaseURL is the front-end address scoring URIs start with, for
	// example http://20.1.2.3. Empty means the address of the front-end
	// Service (FrontEndService in FrontEndNamespace): its load balancer
	// ingress, else its cluster IP.
	ScoringBaseURL string
	// ScoringTLSAddress is the host:port where clients reach the
	// front end's HTTPS port, for example 20.1.2.3:443: the address the
	// clients the library makes dial for https://CNAME (ClusterStatus's
	// ScoringAddress), whose port the scoring URIs carry unless it is
	// 443. Empty means port 443 of the host of the plain address.
	ScoringTLSAddress string
	// FrontEndNamespace and FrontEndService locate the in-cluster
	// front-end; defaults "azureml" and "azureml-fe".
	FrontEndNamespace, FrontEndService string
	// InstallFrontEnd makes Attach install the in-cluster front-end
	// (InstallFrontEnd with FrontEndImage) and Detach remove it.
	InstallFrontEnd bool
	FrontEndImage   string
	// FrontEndInternalLoadBalancer makes the front-end Service an Azure
	// internal load balancer (a private address, no public IP) on the
	// subnet FrontEndLoadBalancerSubnet names (empty: the cluster's own
	// subnet): the load_balancer_type InternalLoadBalancer of a compute
	// target. Other clouds ignore the Azure annotations it sets.
	FrontEndInternalLoadBalancer bool
	FrontEndLoadBalancerSubnet   string
	// TokenTTL is the lifetime of tokens IssueToken returns; default one
	// hour.
	TokenTTL time.Duration
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Clock == nil {
		out.Clock = clock.RealClock{}
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Namespace == "" {
		out.Namespace = DefaultNamespace
	}
	if out.FieldManager == "" {
		out.FieldManager = DefaultFieldManager
	}
	if out.DefaultImage == "" {
		out.DefaultImage = DefaultImage
	}
	if out.FPGAResource == "" {
		out.FPGAResource = DefaultFPGAResource
	}
	if out.CrashLoopRestarts <= 0 {
		out.CrashLoopRestarts = DefaultCrashLoopRestarts
	}
	if out.ImagePullGrace <= 0 {
		out.ImagePullGrace = DefaultImagePullGrace
	}
	if out.UnschedulableTimeout <= 0 {
		out.UnschedulableTimeout = DefaultUnschedulableTimeout
	}
	if out.ProgressDeadline <= 0 {
		out.ProgressDeadline = DefaultProgressDeadline
	}
	if out.FrontEndNamespace == "" {
		out.FrontEndNamespace = DefaultNamespace
	}
	if out.FrontEndService == "" {
		out.FrontEndService = "azureml-fe"
	}
	if out.TokenTTL <= 0 {
		out.TokenTTL = time.Hour
	}
	return out
}
