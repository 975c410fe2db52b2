package compute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/wake"
)

// Store is the workspace compute targets are recorded in, and what runs
// on them: an *aml.Workspace. Records are JSON values addressed by kind and
// name. The store also tracks which model versions each service or
// endpoint uses, so a model in use cannot be deleted, and keeps what this
// process runs that has no stored form (Local).
type Store interface {
	Get(ctx context.Context, kind, name string) ([]byte, error)
	Create(ctx context.Context, kind, name string, value []byte) error
	Put(ctx context.Context, kind, name string, value []byte) error
	Delete(ctx context.Context, kind, name string) error
	Names(ctx context.Context, kind string) ([]string, error)

	// AddModelRefs records that user (a service or endpoint) uses the
	// model versions ids ("name:version"), in addition to those it used.
	AddModelRefs(ctx context.Context, user string, ids []string) error
	// RemoveModelRefs drops every model reference of user.
	RemoveModelRefs(ctx context.Context, user string) error
	// CreateWithModelRefs creates a record and adds the model references
	// of user in one transaction; DeleteWithModelRefs removes both in one.
	// A process killed in between never leaves a record without its
	// references.
	CreateWithModelRefs(ctx context.Context, kind, name string, value []byte, user string, ids []string) error
	DeleteWithModelRefs(ctx context.Context, kind, name, user string) error
	// Local is the workspace's table of process-local values: the Go
	// handlers of the services its targets run.
	Local() *Local
}

// recordKind is the store kind of compute target records.
const recordKind = "compute"

// Target is an AKS compute target (AksCompute): a cluster created or
// attached by a driver.Provider — the simulator, the Kubernetes backend —
// and recorded in the workspace.
type Target struct {
	store    Store
	provider driver.Provider
	cluster  driver.Cluster
	rec      Record
	progress io.Writer
	poll     time.Duration

	clientMu sync.Mutex
	fe       *frontEnd // Client's
}

// DefaultPollInterval is how often waits poll when the backend does not
// wake them: targets, services and endpoints wait on the backend's Watch
// (informers on Kubernetes, notifications in the simulator) and poll only
// as a fallback, at this period unless their options say otherwise.
const DefaultPollInterval = 2 * time.Second

// PollInterval returns p, or DefaultPollInterval when p is not positive.
func PollInterval(p time.Duration) time.Duration {
	if p <= 0 {
		return DefaultPollInterval
	}
	return p
}

// Record is what the workspace keeps about a target: the fields of
// AksCompute.serialize that aksml knows.
type Record struct {
	Name              string              `json:"name"`
	ComputeType       string              `json:"computeType"` // "AKS"
	IsAttached        bool                `json:"isAttachedCompute"`
	ResourceID        string              `json:"resourceId,omitempty"`
	ProvisioningState ProvisioningState   `json:"provisioningState"`
	Provisioning      *ProvisioningConfig `json:"provisioning,omitempty"`
	Attach            *AttachConfig       `json:"attach,omitempty"`
	CreatedOn         time.Time           `json:"createdOn"`
	// Backend names the provider that runs the cluster, when it says
	// (see BackendNamer): "simulator", "kubernetes", "local".
	Backend string `json:"backend,omitempty"`
	// Owner is the process the cluster lives in, for providers that are
	// Ephemeral (the in-process simulator); nil for clusters that outlive
	// processes.
	Owner *Owner `json:"owner,omitempty"`
	// ClusterFQDN is the name of the certificate aksml issued for
	// leaf_domain_label (LABEL######.REGION.cloudapp.azure.com), kept
	// when the certificate is renewed under the same label.
	ClusterFQDN string `json:"clusterFqdn,omitempty"`
}

// Stale reports whether the target's cluster lived in a process that has
// exited (an in-process simulator's): nothing answers for it any more.
func (r Record) Stale() bool {
	return r.Owner != nil && !r.Owner.Alive()
}

// BackendNamer is implemented by providers that name their backend; the
// name is recorded in Record.Backend so that another process opening the
// workspace knows which provider reconnects to the cluster.
type BackendNamer interface {
	Backend() string
}

func backendOf(p driver.Provider) string {
	if n, ok := p.(BackendNamer); ok {
		return n.Backend()
	}
	return ""
}

// CreateOptions are the options of Create and Attach.
type CreateOptions struct {
	// Provider runs the cluster: a *simulator.Simulator, or the Kubernetes
	// backend. Required.
	Provider driver.Provider
	// Progress receives show_output-style lines while Wait runs; nil
	// prints nothing.
	Progress io.Writer
	// PollInterval is how often Wait reads the provisioning state when the
	// backend does not signal a change; 0 means DefaultPollInterval.
	PollInterval time.Duration
}

// Create provisions a new AKS cluster and records it as compute target
// name (AksCompute.create). It validates name and cfg first — every rule
// at once — and refuses a name that exists (creation is not idempotent, as
// on Azure). It returns at once; Wait blocks until provisioning ends.
// Warnings of cfg (a DevTest cluster under 2 vCPUs) go to Progress.
func Create(ctx context.Context, store Store, name string, cfg ProvisioningConfig, opts *CreateOptions) (*Target, error) {
	if opts == nil || opts.Provider == nil {
		return nil, errcode.New(errcode.InvalidArgument, "compute.Create: CreateOptions.Provider is required (the simulator or a Kubernetes backend)")
	}
	cfg = cfg.WithDefaults()
	if err := errors.Join(ValidateName(name), cfg.Validate()); err != nil {
		return nil, err
	}
	size, _ := LookupVMSize(cfg.VMSize)
	for _, w := range cfg.Warnings() {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "Warning: %s\n", w.Message)
		}
	}
	// The certificate is read and checked before anything is made.
	tc, err := resolveTLS(ctx, store, cfg.SSL, cfg.Location, "", time.Now())
	if err != nil {
		return nil, fmt.Errorf("create compute target %q: %w", name, err)
	}
	rec := Record{Name: name, ComputeType: "AKS", ProvisioningState: ProvisioningCreating, Provisioning: &cfg, CreatedOn: time.Now().UTC(), Backend: backendOf(opts.Provider), Owner: ownerOf(opts.Provider), ClusterFQDN: leafFQDN(cfg.SSL, tc)}
	if err := create(ctx, store, rec); err != nil {
		return nil, err
	}
	cl, err := opts.Provider.Provision(ctx, name, clusterShape(cfg, size))
	if err == nil {
		err = setTLS(ctx, cl, tc)
	}
	if err != nil {
		_ = store.Delete(context.WithoutCancel(ctx), recordKind, name)
		return nil, fmt.Errorf("create compute target %q: %w", name, err)
	}
	return &Target{store: store, provider: opts.Provider, cluster: cl, rec: rec, progress: opts.Progress, poll: PollInterval(opts.PollInterval)}, nil
}

// clusterShape is what a provider needs of cfg (with defaults, valid):
// the nodes, sized from the catalog, and the network, whose load-balancer
// subnet counts only for an internal load balancer.
func clusterShape(cfg ProvisioningConfig, size VMSize) driver.ClusterShape {
	shape := driver.ClusterShape{
		AgentCount: cfg.AgentCount, VMSize: size.Name, VCPUs: size.VCPUs, MemoryGB: size.MemoryGiB,
		GPUs: size.GPUs, GPUModel: size.GPUModel, FPGAs: size.FPGAs, Purpose: string(cfg.ClusterPurpose), Location: cfg.Location,
		Network: driver.ClusterNetwork{
			VNetResourceGroup: cfg.VNet.ResourceGroup, VNetName: cfg.VNet.Name, SubnetName: cfg.VNet.SubnetName,
			ServiceCIDR: cfg.VNet.ServiceCIDR, DNSServiceIP: cfg.VNet.DNSServiceIP, DockerBridgeCIDR: cfg.VNet.DockerBridgeCIDR,
		},
	}
	if cfg.LoadBalancerType == InternalLoadBalancer {
		shape.Network.InternalLoadBalancer = true
		shape.Network.LoadBalancerSubnet = cfg.LoadBalancerSubnet
	}
	return shape
}

// Attach records an existing cluster as compute target name
// (AksCompute.attach). The same cluster attached twice under any names is
// refused with AlreadyExists: on Azure the second attachment silently breaks
// the first.
func Attach(ctx context.Context, store Store, name string, cfg AttachConfig, opts *CreateOptions) (*Target, error) {
	if opts == nil || opts.Provider == nil {
		return nil, errcode.New(errcode.InvalidArgument, "compute.Attach: CreateOptions.Provider is required (the simulator or a Kubernetes backend)")
	}
	cfg = cfg.WithDefaults()
	if err := errors.Join(ValidateName(name), cfg.Validate()); err != nil {
		return nil, err
	}
	ref := driver.ClusterRef{ResourceID: cfg.ResourceID, Kubeconfig: cfg.Kubeconfig, Context: cfg.Context}
	if ref.ResourceID == "" && cfg.ClusterName != "" {
		ref.ResourceID = cfg.AKSResourceID("")
	}
	names, err := store.Names(ctx, recordKind)
	if err != nil {
		return nil, err
	}
	for _, other := range names {
		o, err := load(ctx, store, other)
		if err != nil {
			continue
		}
		if o.IsAttached && o.ResourceID != "" && o.ResourceID == refKey(ref) {
			return nil, errcode.Errorf(errcode.AlreadyExists,
				"cluster %s is already attached as compute target %q; attach a cluster once (a second attachment breaks the first on Azure)", refKey(ref), other)
		}
	}
	tc, err := resolveTLS(ctx, store, cfg.SSL, "", "", time.Now())
	if err != nil {
		return nil, fmt.Errorf("attach compute target %q: %w", name, err)
	}
	rec := Record{Name: name, ComputeType: "AKS", IsAttached: true, ResourceID: refKey(ref), ProvisioningState: ProvisioningCreating, Attach: &cfg, CreatedOn: time.Now().UTC(), Backend: backendOf(opts.Provider), Owner: ownerOf(opts.Provider), ClusterFQDN: leafFQDN(cfg.SSL, tc)}
	if err := create(ctx, store, rec); err != nil {
		return nil, err
	}
	cl, err := opts.Provider.Attach(ctx, name, ref)
	if err == nil {
		err = setTLS(ctx, cl, tc)
	}
	if err != nil {
		_ = store.Delete(context.WithoutCancel(ctx), recordKind, name)
		return nil, fmt.Errorf("attach compute target %q: %w", name, err)
	}
	return &Target{store: store, provider: opts.Provider, cluster: cl, rec: rec, progress: opts.Progress, poll: PollInterval(opts.PollInterval)}, nil
}

func refKey(ref driver.ClusterRef) string {
	if ref.ResourceID != "" {
		return ref.ResourceID
	}
	return "kubeconfig:" + ref.Kubeconfig + "#" + ref.Context
}

func create(ctx context.Context, store Store, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	err = store.Create(ctx, recordKind, rec.Name, b)
	if errors.Is(err, errcode.AlreadyExists) {
		// A stale record (its in-process cluster is gone) is replaced.
		if old, lerr := load(ctx, store, rec.Name); lerr == nil && old.Stale() {
			err = store.Put(ctx, recordKind, rec.Name, b)
		}
	}
	if err != nil {
		if errors.Is(err, errcode.AlreadyExists) {
			return errcode.Errorf(errcode.AlreadyExists, "compute target %q already exists in the workspace (create is not idempotent)", rec.Name)
		}
		return err
	}
	return nil
}

func load(ctx context.Context, store Store, name string) (Record, error) {
	return LoadRecord[Record](ctx, store, recordKind, "compute target", name)
}

// Get returns compute target name from the workspace, connected to its
// running cluster through provider (ComputeTarget(ws, name)). A target
// attached by kubeconfig that provider does not hold yet — one attached by
// another process, such as an earlier aksml command — is connected to
// again with provider.Attach; nothing is recorded anew.
func Get(ctx context.Context, store Store, name string, provider driver.Provider) (*Target, error) {
	rec, err := load(ctx, store, name)
	if err != nil {
		return nil, err
	}
	cl, err := provider.Cluster(ctx, name)
	if err != nil && errors.Is(err, errcode.NotFound) && rec.Attach != nil && rec.Attach.Kubeconfig != "" {
		cl, err = provider.Attach(ctx, name, driver.ClusterRef{Kubeconfig: rec.Attach.Kubeconfig, Context: rec.Attach.Context})
	}
	if err != nil {
		return nil, fmt.Errorf("compute target %q is recorded but its cluster is not running: %w", name, err)
	}
	return &Target{store: store, provider: provider, cluster: cl, rec: rec, poll: DefaultPollInterval}, nil
}

// Lookup returns the record of compute target name, without connecting to
// its cluster; NotFound when there is none.
func Lookup(ctx context.Context, store Store, name string) (Record, error) {
	return load(ctx, store, name)
}

// Forget removes the record of compute target name without reaching its
// cluster: for a target whose cluster is gone, such as one that lived in
// the process of an in-process simulator that has exited. NotFound when
// there is no such record.
func Forget(ctx context.Context, store Store, name string) error {
	if _, err := load(ctx, store, name); err != nil {
		return err
	}
	return store.Delete(ctx, recordKind, name)
}

// List returns the records of every compute target in the workspace, by name.
func List(ctx context.Context, store Store) ([]Record, error) {
	return ListRecords[Record](ctx, store, recordKind, "compute target")
}

// Name is the target's name.
func (t *Target) Name() string { return t.rec.Name }

// Record is what the workspace keeps about the target.
func (t *Target) Record() Record { return t.rec }

// Cluster is the running cluster, for backends and webservice.
func (t *Target) Cluster() driver.Cluster { return t.cluster }

// Store is the workspace the target is recorded in.
func (t *Target) Store() Store { return t.store }

// Status returns the provisioning state (get_status).
func (t *Target) Status(ctx context.Context) (ProvisioningState, error) {
	st, err := t.cluster.Status(ctx)
	if err != nil {
		return ProvisioningUnknown, err
	}
	return ProvisioningState(st.State), nil
}

// Wait blocks until provisioning ends (wait_for_completion): nil on
// Succeeded; an error naming the state on Failed or Canceled. With a
// Progress writer it prints `Provisioning operation finished, operation
// "Succeeded"` as the SDK's show_output does.
func (t *Target) Wait(ctx context.Context) error {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	changes := t.cluster.Watch(wctx)
	var result error
	err := wake.Until(ctx, changes, PollInterval(t.poll), func() (bool, error) {
		st, err := t.cluster.Status(ctx)
		if err != nil {
			return false, err
		}
		state := ProvisioningState(st.State)
		if !state.Terminal() {
			return false, nil
		}
		if t.progress != nil {
			fmt.Fprintf(t.progress, "Provisioning operation finished, operation %q\n", state)
		}
		t.rec.ProvisioningState = state
		if b, err := json.Marshal(t.rec); err == nil {
			_ = t.store.Put(ctx, recordKind, t.rec.Name, b)
		}
		if state != ProvisioningSucceeded {
			result = errcode.Errorf(errcode.FailedPrecondition,
				"Compute object provisioning polling reached non-successful terminal state, current provisioning state: %s: %v", state, st.Errors)
		}
		return true, nil
	})
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return errcode.Wrap(errcode.DeadlineExceeded, fmt.Errorf("waiting for compute target %q: %w", t.rec.Name, err))
	}
	if err != nil {
		return err
	}
	return result
}

// Detach removes the target from the workspace without deleting the
// cluster (detach).
func (t *Target) Detach(ctx context.Context) error {
	if err := t.cluster.Detach(ctx); err != nil {
		return err
	}
	return t.store.Delete(ctx, recordKind, t.rec.Name)
}

// Delete deletes a cluster aksml created and removes the target (delete).
// An attached cluster is refused with FailedPrecondition: detach it.
func (t *Target) Delete(ctx context.Context) error {
	if t.rec.IsAttached {
		return errcode.Errorf(errcode.FailedPrecondition, "compute target %q is attached: delete would remove a cluster aksml did not create; use Detach", t.rec.Name)
	}
	if err := t.cluster.Delete(ctx); err != nil {
		return err
	}
	return t.store.Delete(ctx, recordKind, t.rec.Name)
}
