package driver

import (
	"context"
	"time"

	"github.com/aksml/aksml/scoring/handler"
)

// Provider creates and attaches clusters. The simulator is a Provider; so is
// the Kubernetes backend.
type Provider interface {
	// Provision creates a cluster of the given shape. It returns at once; the
	// cluster's ProvisioningState moves from Creating to Succeeded or Failed.
	// A name already provisioned by this provider → AlreadyExists.
	Provision(ctx context.Context, name string, shape ClusterShape) (Cluster, error)
	// Attach connects to an existing cluster identified by ref (an AKS
	// resource id, or a kubeconfig path and context). The same underlying
	// cluster attached twice under different names → AlreadyExists.
	Attach(ctx context.Context, name string, ref ClusterRef) (Cluster, error)
	// Cluster returns a cluster this provider provisioned or attached, by
	// name; NotFound otherwise.
	Cluster(ctx context.Context, name string) (Cluster, error)
}

// ClusterShape is what Provision needs: nodes and their size, resolved from a
// compute.ProvisioningConfig and the VM-size catalog.
type ClusterShape struct {
	AgentCount int
	VMSize     string
	VCPUs      int
	MemoryGB   float64
	GPUs       int
	GPUModel   string
	FPGAs      int
	Purpose    string // FastProd, DenseProd or DevTest
	Location   string
	// Network places the nodes and exposes the front-end; the zero value
	// means the provider's defaults (a network of its own, a public load
	// balancer).
	Network ClusterNetwork
}

// ClusterNetwork is the network part of a ClusterShape, from the vnet and
// load-balancer settings of a compute.ProvisioningConfig (validated there:
// the vnet fields come all or none, DNSServiceIP lies inside ServiceCIDR).
type ClusterNetwork struct {
	// VNetResourceGroup, VNetName and SubnetName name an existing subnet the
	// nodes join; the provider builds its ARM id in its own subscription.
	VNetResourceGroup string
	VNetName          string
	SubnetName        string
	// ServiceCIDR is the Kubernetes service address range and DNSServiceIP
	// the cluster DNS address inside it.
	ServiceCIDR  string
	DNSServiceIP string
	// DockerBridgeCIDR is the Docker bridge range of the SDK's
	// docker_bridge_cidr. AKS no longer takes it (nodes run containerd), so
	// providers may ignore it.
	DockerBridgeCIDR string
	// InternalLoadBalancer exposes the front-end on a private address of
	// LoadBalancerSubnet instead of a public IP.
	InternalLoadBalancer bool
	LoadBalancerSubnet   string
}

// HasSubnet reports whether the nodes join an existing subnet.
func (n ClusterNetwork) HasSubnet() bool {
	return n.VNetResourceGroup != "" && n.VNetName != "" && n.SubnetName != ""
}

// ClusterRef identifies an existing cluster to attach.
type ClusterRef struct {
	ResourceID string // /subscriptions/…/managedClusters/NAME
	Kubeconfig string
	Context    string
}

// ProvisioningState of a cluster, as Azure reports it.
type ProvisioningState string

// Provisioning states (the ARM enum).
const (
	StateUnknown   ProvisioningState = "Unknown"
	StateCreating  ProvisioningState = "Creating"
	StateUpdating  ProvisioningState = "Updating"
	StateDeleting  ProvisioningState = "Deleting"
	StateSucceeded ProvisioningState = "Succeeded"
	StateFailed    ProvisioningState = "Failed"
	StateCanceled  ProvisioningState = "Canceled"
)

// ClusterStatus is a cluster's provisioning state and shape.
type ClusterStatus struct {
	State  ProvisioningState
	Errors []string
	Shape  ClusterShape
	// ScoringBaseURL is the cluster's single front-end address, for example
	// http://127.0.0.1:41234; every service on the cluster shares it. With
	// TLS on it is https://CNAME[:PORT], the certificate's name, as Azure
	// reports it.
	ScoringBaseURL string
	// ScoringAddress is the host:port clients dial for ScoringBaseURL
	// whatever its host name resolves to: a simulator's or local cluster's
	// CNAME is in no DNS, so the clients the library makes connect here and
	// present the name for SNI and verification. Empty means dial the URL's
	// host.
	ScoringAddress string
	// HTTPBaseURL is the front-end's plain-HTTP address. It equals
	// ScoringBaseURL while TLS is off; with TLS on, requests to it are
	// answered 308 Permanent Redirect to the same path under
	// ScoringBaseURL, and never reach a replica.
	HTTPBaseURL string
	// TLS describes the certificate the front end serves; nil while it
	// serves plain HTTP only.
	TLS *TLSStatus
}

// TLS is a front end's serving certificate: a compute target's SSL
// setting (enable_ssl), resolved and validated by package compute.
type TLS struct {
	// CName is the DNS name clients reach the front end by; scoring URIs
	// carry it.
	CName string
	// CertPEM is the certificate chain, leaf first, and KeyPEM its private
	// key, both PEM-encoded.
	CertPEM []byte
	KeyPEM  []byte
	// CABundle holds PEM certificates that clients should trust for this
	// front end beyond the system's roots: the workspace CA for a
	// certificate it issued (leaf_domain_label); empty for a certificate of
	// the user's own.
	CABundle []byte
}

// TLSStatus is the certificate a front end serves, as ClusterStatus
// reports it.
type TLSStatus struct {
	// CName is the name of the certificate, the host of ScoringBaseURL.
	CName string
	// NotAfter is when the certificate expires.
	NotAfter time.Time
	// SHA256 is the hex SHA-256 fingerprint of the leaf certificate (its
	// DER bytes), to tell which certificate is served.
	SHA256 string
	// CABundle is as in TLS: what clients should trust beyond the
	// system's roots.
	CABundle []byte
}

// Cluster runs scoring services. All methods are safe for concurrent use.
type Cluster interface {
	// Name is the name the cluster was provisioned or attached under.
	Name() string
	// Status reports provisioning state. It never fails for a live cluster.
	Status(ctx context.Context) (ClusterStatus, error)

	// ApplyService creates the service or updates it to spec. It returns
	// once the change is accepted, not when it is done: ServiceStatus shows
	// Transitioning until the rollout ends. An update is rolling: replicas of
	// the new spec become ready before old ones are removed, and the service
	// keeps answering throughout. Applying an unchanged spec changes nothing.
	ApplyService(ctx context.Context, spec *ServiceSpec) error
	// DeleteService removes the service and everything it created; NotFound
	// if there is none.
	DeleteService(ctx context.Context, name string) error
	// ServiceStatus reports the service's state; NotFound if there is none.
	ServiceStatus(ctx context.Context, name string) (*ServiceStatus, error)
	// ServiceLogs returns up to tail lines of the service's replica logs
	// (all replicas, oldest first); with init, only the output of init().
	ServiceLogs(ctx context.Context, name string, tail int, init bool) ([]string, error)
	// IssueToken returns a bearer token for a token-auth service, valid until
	// expiresOn and to be refreshed after refreshAfter.
	IssueToken(ctx context.Context, name string) (Token, error)
	// Watch returns a channel that receives a value whenever the cluster's
	// provisioning state or the state of any of its services may have
	// changed, until ctx ends (the channel is then no longer sent on, and
	// not closed). Values coalesce: one pending value stands for any number
	// of changes. A waiter subscribes first, then reads the state, and reads
	// it again on each value; it also polls now and then, at a period the
	// caller chooses, for what the backend cannot signal. A backend that
	// cannot signal anything returns nil, and waiters only poll.
	Watch(ctx context.Context) <-chan struct{}

	// SetTLS makes the front end serve HTTPS with the certificate tls (nil:
	// plain HTTP only, the default). While TLS is on, plain-HTTP requests
	// are answered 308 to ScoringBaseURL. A new certificate takes effect
	// for new TLS handshakes without restarting replicas; connections
	// already open keep working, so rotation fails no request. It returns
	// once the change is accepted; Status reports the certificate once the
	// front end serves it.
	SetTLS(ctx context.Context, tls *TLS) error

	// Detach forgets the cluster without deleting what runs on it; Delete
	// removes the cluster (Unimplemented for attached clusters).
	Detach(ctx context.Context) error
	Delete(ctx context.Context) error
}

// Token is an access token for a service, as get_access_token returns it.
type Token struct {
	AccessToken  string
	TokenType    string // "Bearer"
	RefreshAfter time.Time
	ExpiresOn    time.Time
}

// ServiceSpec is a resolved deployment: a web service has one version named
// like the service; an endpoint has up to six.
type ServiceSpec struct {
	Name        string
	Namespace   string
	Description string
	Tags        map[string]string
	IsEndpoint  bool
	Auth        Auth
	Versions    []VersionSpec
	// Generation increases with every ApplyService of a changed spec.
	Generation int64
}

// AuthMode says how callers authenticate.
type AuthMode string

// Auth modes.
const (
	AuthNone  AuthMode = "none"
	AuthKey   AuthMode = "key"
	AuthToken AuthMode = "token"
)

// Auth is a service's caller authentication.
type Auth struct {
	Mode         AuthMode
	PrimaryKey   string
	SecondaryKey string
}

// VersionSpec is one version of a service: its replicas and its share of
// traffic.
type VersionSpec struct {
	Name           string
	TrafficPercent float64
	IsDefault      bool
	IsControl      bool
	// MirrorPercent copies that share of the endpoint's live traffic to this
	// version; mirrored responses are discarded.
	MirrorPercent float64
	Replica       ReplicaTemplate
	Scale         Scale
}

// Scale is a version's replica count policy.
type Scale struct {
	Autoscale         bool
	Replicas          int // fixed count when Autoscale is false
	Min, Max          int
	TargetUtilization float64 // percent
	RefreshPeriod     time.Duration
}

// ReplicaTemplate is what every replica of a version runs.
type ReplicaTemplate struct {
	// Handler is set for Go-native models; otherwise EntryScript names a
	// score.py relative to SourceDir.
	Handler     handler.New `json:"-"` // code of this process: never stored
	EntryScript string
	SourceDir   string
	Interpreter string
	Env         map[string]string
	// ModelDir is AZUREML_MODEL_DIR for the replica, on the local disk.
	ModelDir string
	Models   []ModelRef
	// Image is the container image by digest, for container backends.
	Image  string
	Digest string // content digest of everything the replica runs

	CPU, CPULimit           float64
	MemoryGB, MemoryGBLimit float64
	GPUs                    int
	FPGAs                   int

	Probe                   Probe
	ScoringTimeout          time.Duration
	MaxConcurrentPerReplica int
	MaxQueueWait            time.Duration
	Workers                 int
	// MaxBatchSize turns request batching on in each replica (0: off):
	// up to MaxBatchSize concurrent requests go together to the entry
	// script's run_batch (a Go handler's RunBatch), the oldest waiting at
	// most MaxBatchDelay for the batch to fill (scoring.Config).
	MaxBatchSize  int
	MaxBatchDelay time.Duration

	// CollectModelData turns on azureml.monitoring.ModelDataCollector for
	// the entry script (collect_model_data): records go below ModelDataDir
	// (the workspace directory) in v1's modeldata/... layout.
	CollectModelData bool
	ModelDataDir     string
	// AppInsights turns on request telemetry (enable_app_insights): a
	// record per scored request and per line the entry script prints while
	// serving it, written as JSON lines to ModelDataDir's
	// telemetry/<service>/<replica>.jsonl (scoring.TelemetryFile) where the
	// backend can reach it.
	AppInsights bool
}

// ModelRef names a registered model version a replica serves.
type ModelRef struct {
	Name    string
	Version int
	Digest  string
}

// Probe is the liveness probe of each replica.
type Probe struct {
	Period, InitialDelay, Timeout time.Duration
	SuccessThreshold              int
	FailureThreshold              int
}

// State of a web service, as Azure ML reports it.
type State string

// Service states (see reference §2).
const (
	Transitioning State = "Transitioning"
	Healthy       State = "Healthy"
	Unhealthy     State = "Unhealthy"
	Unschedulable State = "Unschedulable"
	Failed        State = "Failed"
	Deleting      State = "Deleting"
)

// Final reports whether a service in state s stays there without a new
// operation: Healthy and Failed are final.
func (s State) Final() bool { return s == Healthy || s == Failed }

// ServiceStatus is what ServiceStatus reports.
type ServiceStatus struct {
	Name       string
	State      State
	Message    string // why, for anything but Healthy (a scheduler message, a crash log tail)
	Generation int64  // the spec generation the state refers to
	ScoringURI string
	SwaggerURI string
	Versions   []VersionStatus
}

// Summary is the state and, when there is one, the reason: the line a
// progress display shows ("Transitioning: 0 of 2 replicas ready").
func (s *ServiceStatus) Summary() string {
	if s.Message == "" {
		return string(s.State)
	}
	return string(s.State) + ": " + s.Message
}

// VersionStatus is one version's replicas.
type VersionStatus struct {
	Name          string
	State         State
	Message       string
	Desired       int
	Ready         int
	Replicas      int
	Restarts      int
	ScoringURI    string
	ServesTraffic bool // false while the version has no ready replica
}
