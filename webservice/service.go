package webservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/internal/wake"
)

// Store is where services are recorded: the workspace of the service's
// compute target (an *aml.Workspace), which also tracks which model
// versions a service uses, so a model in use cannot be deleted.
type Store = compute.Store

// recordKind is the store kind of service records.
const recordKind = "service"

// Runtime is what a service's replicas run: built by aml.Deploy from the
// models and the inference config (entry script or Go handler, source
// directory, environment, model directory).
type Runtime struct {
	// Template holds everything but the deploy config's resources, probe
	// and limits, which Deploy fills in.
	Template driver.ReplicaTemplate
	// ModelIDs are the "name:version" ids of the models served.
	ModelIDs []string
}

// Record is what the workspace keeps about a service: enough to list it,
// find its target and rebuild its spec.
type Record struct {
	Name          string       `json:"name"`
	ComputeTarget string       `json:"computeName"`
	ComputeType   string       `json:"computeType"` // "AKS"
	Config        DeployConfig `json:"config"`
	PrimaryKey    string       `json:"primaryKey,omitempty"`
	SecondaryKey  string       `json:"secondaryKey,omitempty"`
	ModelIDs      []string     `json:"models"`
	ScoringURI    string       `json:"scoringUri"`
	SwaggerURI    string       `json:"swaggerUri"`
	Generation    int64        `json:"generation"`
	CreatedTime   time.Time    `json:"createdTime"`
	UpdatedTime   time.Time    `json:"updatedTime"`
	// Runtime is what the replicas of an entry-script service run, kept
	// so that another process (a later CLI command) can update the
	// service or change its keys; nil for a Go handler, which is code of
	// the deploying process.
	Runtime *Runtime `json:"runtime,omitempty"`
	// Owner is the process the service's cluster lived in when it was
	// deployed, for in-process clusters (see compute.Record.Owner).
	Owner *compute.Owner `json:"owner,omitempty"`
}

// Stale reports whether the service ran on an in-process cluster whose
// process has exited.
func (r Record) Stale() bool {
	return r.Owner != nil && !r.Owner.Alive()
}

// DeployOptions are the options of Deploy.
type DeployOptions struct {
	// Progress receives show_output-style lines during WaitForDeployment;
	// nil prints nothing.
	Progress io.Writer
	// HTTPClient is used by Run; nil means a shared pooled client.
	HTTPClient *http.Client
	// PollInterval is how often WaitForDeployment reads the state when the
	// backend does not signal a change (it waits on the cluster's Watch
	// otherwise); 0 means compute.DefaultPollInterval.
	PollInterval time.Duration
}

// Service is a deployed web service (AksWebservice): a handle on its state,
// logs, keys and scoring URI. Deploy and Update return at once; use
// WaitForDeployment. A Service is safe for concurrent use.
type Service struct {
	target   *compute.Target
	store    Store
	progress io.Writer
	client   *http.Client
	poll     time.Duration

	mu  sync.Mutex
	rec Record
	rt  Runtime
}

var defaultClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}

// keepRuntime keeps rt in the workspace's process-local table, so that a
// handle found with Get can still update a Go-handler service (a Go func
// cannot be stored in the workspace). Each workspace has its own table.
func keepRuntime(store Store, name string, rt Runtime) {
	store.Local().Store(recordKind, name, rt)
}

// Deploy creates service name on target (Model.deploy) and returns at once,
// in state Transitioning. It validates name and cfg first, reporting every
// broken rule. Keys left empty are generated with crypto/rand.
func Deploy(ctx context.Context, target *compute.Target, name string, cfg DeployConfig, rt Runtime, opts *DeployOptions) (*Service, error) {
	if err := errors.Join(ValidateName(name), cfg.Validate()); err != nil {
		return nil, err
	}
	store := target.Store()
	if opts == nil {
		opts = &DeployOptions{}
	}
	s := &Service{target: target, store: store, progress: opts.Progress, client: opts.HTTPClient, poll: opts.PollInterval, rt: rt}
	now := time.Now().UTC()
	s.rec = Record{Name: name, ComputeTarget: target.Name(), ComputeType: "AKS", Config: cfg, ModelIDs: rt.ModelIDs,
		PrimaryKey: cfg.PrimaryKey, SecondaryKey: cfg.SecondaryKey, CreatedTime: now, UpdatedTime: now, Generation: 1}
	s.rec.Config.PrimaryKey, s.rec.Config.SecondaryKey = "", ""
	if s.rec.PrimaryKey == "" {
		s.rec.PrimaryKey = frontend.GenerateKey()
	}
	if s.rec.SecondaryKey == "" {
		s.rec.SecondaryKey = frontend.GenerateKey()
	}
	s.rec.Owner = target.Record().Owner
	b, _ := json.Marshal(s.rec)
	err := store.CreateWithModelRefs(ctx, recordKind, name, b, name, rt.ModelIDs)
	if errors.Is(err, errcode.AlreadyExists) {
		// A stale record (its in-process cluster is gone) is replaced.
		if old, lerr := load(ctx, store, name); lerr == nil && old.Stale() {
			if err = store.DeleteWithModelRefs(ctx, recordKind, name, name); err == nil {
				err = store.CreateWithModelRefs(ctx, recordKind, name, b, name, rt.ModelIDs)
			}
		}
	}
	if err != nil {
		if errors.Is(err, errcode.AlreadyExists) {
			return nil, errcode.Errorf(errcode.AlreadyExists, "service %q already exists in the workspace: deploy with aml.DeployOptions{Overwrite: true} (az ml model deploy --overwrite) to update it, call Service.Update, or delete it first", name)
		}
		return nil, err
	}
	if err := s.apply(ctx); err != nil {
		_ = store.DeleteWithModelRefs(context.WithoutCancel(ctx), recordKind, name, name)
		return nil, err
	}
	keepRuntime(store, name, rt)
	return s, nil
}

// serviceSpec builds the driver spec of a one-version service from its
// config and runtime.
func serviceSpec(name string, cfg DeployConfig, primary, secondary string, tmpl driver.ReplicaTemplate) driver.ServiceSpec {
	e := cfg.Effective()
	v := cfg.Version(name, tmpl)
	v.TrafficPercent, v.IsDefault = 100, true
	return driver.ServiceSpec{
		Name:        name,
		Namespace:   e.Namespace,
		Description: e.Description,
		Tags:        e.Tags,
		Auth:        e.Auth.Driver(primary, secondary),
		Versions:    []driver.VersionSpec{v},
	}
}

// Driver returns the auth mode with its keys in the driver's form; the
// keys count only for AuthKey.
func (m AuthMode) Driver(primary, secondary string) driver.Auth {
	switch m {
	case AuthKey:
		return driver.Auth{Mode: driver.AuthKey, PrimaryKey: primary, SecondaryKey: secondary}
	case AuthToken:
		return driver.Auth{Mode: driver.AuthToken}
	}
	return driver.Auth{Mode: driver.AuthNone}
}

// Version builds the driver spec of one version named name whose replicas
// run tmpl with c's resources, probe, limits and replica policy (defaults
// filled in). A web service is one such version, named like the service,
// taking all traffic; an endpoint has one per version and sets the traffic
// fields itself.
func (c DeployConfig) Version(name string, tmpl driver.ReplicaTemplate) driver.VersionSpec {
	e := c.Effective()
	t := tmpl
	t.CPU, t.CPULimit = e.CPUCores, e.CPUCoresLimit
	t.MemoryGB, t.MemoryGBLimit = e.MemoryGB, e.MemoryGBLimit
	t.GPUs = e.GPUCores
	t.Probe = driver.Probe{Period: e.Liveness.Period, InitialDelay: e.Liveness.InitialDelay, Timeout: e.Liveness.Timeout,
		SuccessThreshold: e.Liveness.SuccessThreshold, FailureThreshold: e.Liveness.FailureThreshold}
	t.ScoringTimeout = e.ScoringTimeout
	t.MaxConcurrentPerReplica = e.MaxConcurrentRequests
	t.MaxQueueWait = e.MaxRequestWait
	t.MaxBatchSize, t.MaxBatchDelay = e.MaxBatchSize, e.MaxBatchDelay
	t.CollectModelData = e.CollectModelData
	t.AppInsights = e.AppInsights
	switch {
	case t.Workers != 0:
	case e.MaxBatchSize > 0:
		// With batching, a worker serves a batch at a time: one worker
		// per max_batch_size concurrent requests.
		t.Workers = (e.MaxConcurrentRequests + e.MaxBatchSize - 1) / e.MaxBatchSize
	default:
		// One Python worker per concurrent request a replica accepts.
		t.Workers = e.MaxConcurrentRequests
	}
	return driver.VersionSpec{
		Name:    name,
		Replica: t,
		Scale: driver.Scale{Autoscale: e.Autoscale, Replicas: e.Replicas, Min: e.MinReplicas, Max: e.MaxReplicas,
			TargetUtilization: float64(e.TargetUtilization), RefreshPeriod: e.RefreshPeriod},
	}
}

func (s *Service) spec() *driver.ServiceSpec {
	sp := serviceSpec(s.rec.Name, s.rec.Config, s.rec.PrimaryKey, s.rec.SecondaryKey, s.rt.Template)
	sp.Generation = s.rec.Generation
	return &sp
}

// apply sends the current record to the cluster and saves it. Caller
// holds s.mu or owns s exclusively.
func (s *Service) apply(ctx context.Context) error {
	s.rec.Runtime = StoredRuntime(s.rt)
	spec := s.spec()
	if err := s.target.Cluster().ApplyService(ctx, spec); err != nil {
		return fmt.Errorf("deploy service %q: %w", s.rec.Name, err)
	}
	st, err := s.target.Cluster().ServiceStatus(ctx, s.rec.Name)
	if err == nil {
		s.rec.ScoringURI, s.rec.SwaggerURI = st.ScoringURI, st.SwaggerURI
	}
	b, _ := json.Marshal(s.rec)
	return s.store.Put(ctx, recordKind, s.rec.Name, b)
}

// StoredRuntime is the copy of rt a record keeps: an entry script's
// runtime, or nil for a Go handler's (code of the deploying process, which
// no other process can run). Endpoints keep their versions' the same way.
func StoredRuntime(rt Runtime) *Runtime {
	if rt.Template.Handler != nil || rt.Template.EntryScript == "" {
		return nil
	}
	return &rt
}

// Get returns the service name recorded in target's workspace. A service
// deployed with an entry script by another process can be changed as
// well: its record keeps the runtime.
func Get(ctx context.Context, target *compute.Target, name string) (*Service, error) {
	store := target.Store()
	rec, err := load(ctx, store, name)
	if err != nil {
		return nil, err
	}
	if rec.ComputeTarget != target.Name() {
		return nil, errcode.Errorf(errcode.InvalidArgument, "service %q runs on compute target %q, not %q", name, rec.ComputeTarget, target.Name())
	}
	s := &Service{target: target, store: store, rec: rec}
	if rt, ok := store.Local().Load(recordKind, name); ok {
		s.rt = rt.(Runtime)
	} else if rec.Runtime != nil {
		s.rt = *rec.Runtime
	}
	return s, nil
}

// List returns the records of every service in the store, by name.
func List(ctx context.Context, store compute.Store) ([]Record, error) {
	return compute.ListRecords[Record](ctx, store, recordKind, "service")
}

func load(ctx context.Context, store compute.Store, name string) (Record, error) {
	return compute.LoadRecord[Record](ctx, store, recordKind, "service", name)
}

// Name is the service's name.
func (s *Service) Name() string { return s.rec.Name }

// Record returns what the workspace keeps about the service.
func (s *Service) Record() Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec
}

// ScoringURI is http://<cluster>/api/v1/service/<name>/score.
// After the target's TLS setting changes (compute.Target.Update) it is on
// the new base: https://CNAME/... .
func (s *Service) ScoringURI() string {
	s.mu.Lock()
	uri := s.rec.ScoringURI
	s.mu.Unlock()
	return s.target.ScoringURI(context.Background(), uri)
}

// SwaggerURI is the scoring URI's sibling swagger.json.
func (s *Service) SwaggerURI() string {
	s.mu.Lock()
	uri := s.rec.SwaggerURI
	s.mu.Unlock()
	return s.target.ScoringURI(context.Background(), uri)
}

// Status returns the service's state as the backend reports it.
func (s *Service) Status(ctx context.Context) (*driver.ServiceStatus, error) {
	return s.target.Cluster().ServiceStatus(ctx, s.rec.Name)
}

// State returns the service's state: Transitioning, Healthy, Unhealthy,
// Unschedulable or Failed.
func (s *Service) State(ctx context.Context) (driver.State, error) {
	st, err := s.Status(ctx)
	if err != nil {
		return "", err
	}
	return st.State, nil
}

// WaitForDeployment blocks until the deployment or update ends
// (wait_for_deployment): nil when the service is Healthy; when it Failed,
// an error naming the state, the reason and the last lines of the replica
// logs. ctx bounds the wait (timeout_sec).
func (s *Service) WaitForDeployment(ctx context.Context) error {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	changes := s.target.Cluster().Watch(wctx)
	var last *driver.ServiceStatus
	err := wake.Until(ctx, changes, compute.PollInterval(s.poll), func() (bool, error) {
		st, err := s.Status(ctx)
		if err != nil {
			return false, err
		}
		if s.progress != nil && (last == nil || st.State != last.State || st.Message != last.Message) {
			fmt.Fprintf(s.progress, "%s service %s: %s\n", time.Now().Format("2006-01-02 15:04:05"), s.rec.Name, st.Summary())
		}
		last = st
		switch st.State {
		case driver.Healthy:
			return true, nil
		case driver.Failed:
			logs, _ := s.Logs(ctx, 20, false)
			msg := fmt.Sprintf("Service deployment polling reached non-successful terminal state, current service state: %s\nError:\n%s", st.State, st.Message)
			if len(logs) > 0 && !strings.Contains(st.Message, "last log lines") {
				msg += "\nlast log lines:\n" + strings.Join(logs, "\n")
			}
			return false, errcode.New(errcode.FailedPrecondition, msg)
		}
		return false, nil
	})
	if err != nil && last != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return errcode.Wrap(errcode.DeadlineExceeded, fmt.Errorf("waiting for service %q (state %s: %s): %w", s.rec.Name, last.State, last.Message, err))
	}
	return err
}

// Logs returns up to tail lines of the replicas' logs (get_logs); tail ≤ 0
// means 5000, the SDK's default. With init, only init() output.
func (s *Service) Logs(ctx context.Context, tail int, init bool) ([]string, error) {
	if tail <= 0 {
		tail = 5000
	}
	return s.target.Cluster().ServiceLogs(ctx, s.rec.Name, tail, init)
}

// Keys returns the primary and secondary keys (get_keys). A service without
// key auth has none: FailedPrecondition.
func (s *Service) Keys(ctx context.Context) (primary, secondary string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.Config.Effective().Auth != AuthKey {
		return "", "", errcode.Errorf(errcode.FailedPrecondition, "service %q does not use key auth (auth_enabled is false)", s.rec.Name)
	}
	return s.rec.PrimaryKey, s.rec.SecondaryKey, nil
}

// KeyType names a key for RegenKey.
type KeyType string

// The two keys.
const (
	Primary   KeyType = "Primary"
	Secondary KeyType = "Secondary"
)

// ParseKeyType reads a key name in any case, as the SDK capitalises it:
// Primary or Secondary, anything else InvalidArgument.
func ParseKeyType(key KeyType) (KeyType, error) {
	switch {
	case strings.EqualFold(string(key), string(Primary)):
		return Primary, nil
	case strings.EqualFold(string(key), string(Secondary)):
		return Secondary, nil
	}
	return "", errcode.Errorf(errcode.InvalidArgument, "key %q: must be Primary or Secondary", key)
}

// RegenKey replaces the primary or secondary key (regen_key) with value, or
// with a new random key when value is empty. The old value is rejected as
// soon as RegenKey returns; the other key keeps working throughout, so a
// client that moved to it first sees no failure.
func (s *Service) RegenKey(ctx context.Context, key KeyType, value string) error {
	k, err := ParseKeyType(key)
	if err != nil {
		return err
	}
	if value == "" {
		value = frontend.GenerateKey()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.Config.Effective().Auth != AuthKey {
		return errcode.Errorf(errcode.FailedPrecondition, "service %q does not use key auth (auth_enabled is false)", s.rec.Name)
	}
	if k == Primary {
		s.rec.PrimaryKey = value
	} else {
		s.rec.SecondaryKey = value
	}
	return s.apply(ctx)
}

// Token returns an access token for a token-auth service
// (get_access_token), with the time to refresh it and its expiry.
func (s *Service) Token(ctx context.Context) (driver.Token, error) {
	return s.target.Cluster().IssueToken(ctx, s.rec.Name)
}

// credential returns the bearer credential Run sends.
func (s *Service) credential(ctx context.Context) (string, error) {
	s.mu.Lock()
	mode := s.rec.Config.Effective().Auth
	key := s.rec.PrimaryKey
	s.mu.Unlock()
	switch mode {
	case AuthKey:
		return key, nil
	case AuthToken:
		t, err := s.Token(ctx)
		return t.AccessToken, err
	}
	return "", nil
}

// ResponseError is a non-200 answer from the service; read it with
// errors.As. Its code follows the status: 401 Unauthenticated, 503
// Unavailable, 504 DeadlineExceeded, 413 InvalidArgument; an exception in
// the entry script's run() (502 with x-ms-run-function-failed: true) is
// Internal, since the same input fails again; others Unavailable.
type ResponseError struct {
	StatusCode int
	Body       string
	// RunFailed reports that the model's run() raised (or a Go handler's
	// Run returned an error).
	RunFailed bool
	// ServedBy is the version that answered, when the router says.
	ServedBy string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("Received bad response from service. More information can be found by calling Logs().\nResponse Code: %d\nResponse Content: %s", e.StatusCode, e.Body)
}

// Run scores input (run): a []byte, string or json.RawMessage is sent as
// is, anything else as its JSON. It sends the primary key or a fresh token
// and, on a 401, fetches the credentials again and retries once, as the SDK
// does. A 200 returns the response body.
func (s *Service) Run(ctx context.Context, input any) (json.RawMessage, error) {
	client, err := ClientFor(ctx, s.client, s.target)
	if err != nil {
		return nil, err
	}
	return Score(ctx, client, s.ScoringURI(), input, func(ctx context.Context, refresh bool) (string, error) {
		if refresh {
			if rec, err := load(ctx, s.store, s.rec.Name); err == nil {
				s.mu.Lock()
				s.rec.PrimaryKey, s.rec.SecondaryKey = rec.PrimaryKey, rec.SecondaryKey
				s.mu.Unlock()
			}
		}
		return s.credential(ctx)
	})
}

// ClientFor returns client, or when it is nil the target's own
// (compute.Target.Client): one that reaches the front end's address for
// its CNAME and trusts the workspace CA, for HTTPS targets.
func ClientFor(ctx context.Context, client *http.Client, target *compute.Target) (*http.Client, error) {
	if client != nil {
		return client, nil
	}
	if target == nil {
		return defaultClient, nil
	}
	return target.Client(ctx)
}

// Score posts input to a scoring URI as Service.Run does, with the bearer
// credential cred returns ("" sends none). On a 401 it calls cred again
// with refresh true and retries once. A nil client means a shared pooled
// one. Endpoints and tools that only know a URI use it.
func Score(ctx context.Context, client *http.Client, uri string, input any, cred func(ctx context.Context, refresh bool) (string, error)) (json.RawMessage, error) {
	out, _, err := ScoreServed(ctx, client, uri, input, cred)
	return out, err
}

// ScoreServed is Score that also returns the name of the version that
// answered (the router's aksml-served-by header; "" when absent): on an
// endpoint, which version the traffic rules picked.
func ScoreServed(ctx context.Context, client *http.Client, uri string, input any, cred func(ctx context.Context, refresh bool) (string, error)) (json.RawMessage, string, error) {
	if client == nil {
		client = defaultClient
	}
	var body []byte
	switch in := input.(type) {
	case []byte:
		body = in
	case string:
		body = []byte(in)
	case json.RawMessage:
		body = in
	default:
		b, err := json.Marshal(input)
		if err != nil {
			return nil, "", errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("run: input is not JSON-serialisable: %w", err))
		}
		body = b
	}
	for attempt := 0; ; attempt++ {
		c := ""
		if cred != nil {
			var err error
			if c, err = cred(ctx, attempt > 0); err != nil {
				return nil, "", err
			}
		}
		code, hdr, out, err := post(ctx, client, uri, c, body)
		if err != nil {
			return nil, "", err
		}
		served := hdr.Get(frontend.HeaderServedBy)
		if code == http.StatusOK {
			return out, served, nil
		}
		if code == http.StatusUnauthorized && attempt == 0 && cred != nil {
			continue
		}
		re := &ResponseError{StatusCode: code, Body: string(out), ServedBy: served,
			RunFailed: strings.EqualFold(hdr.Get("X-Ms-Run-Function-Failed"), "true")}
		ec := statusCode(code)
		if re.RunFailed && code >= 500 {
			ec = errcode.Internal
		}
		return nil, served, errcode.Wrap(ec, re)
	}
}

func statusCode(code int) *errcode.Code {
	switch code {
	case http.StatusUnauthorized:
		return errcode.Unauthenticated
	case http.StatusGatewayTimeout:
		return errcode.DeadlineExceeded
	case http.StatusRequestEntityTooLarge, http.StatusBadRequest:
		return errcode.InvalidArgument
	case http.StatusNotFound:
		return errcode.NotFound
	}
	return errcode.Unavailable
}

func post(ctx context.Context, client *http.Client, uri, cred string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, errcode.Wrap(errcode.Internal, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, errcode.Wrap(errcode.Unavailable, fmt.Errorf("run: %w", err))
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, errcode.Wrap(errcode.Unavailable, fmt.Errorf("run: reading the response: %w", err))
	}
	return resp.StatusCode, resp.Header, out, nil
}

// UpdateOptions says what Update changes. Nil fields stay as they are.
type UpdateOptions struct {
	// Config holds the deploy-config fields to change: its non-zero fields
	// (and non-nil *bool fields) replace the service's. Properties may only
	// be added, never changed; Tags replace the tags.
	Config *DeployConfig
	// Runtime replaces what the replicas run (new models, a new inference
	// config); the replicas roll.
	Runtime *Runtime
}

// Update changes the service (update) and returns at once; the change rolls
// out with new replicas ready before old ones leave, so the service keeps
// answering. Use WaitForDeployment. Nothing to change →
// InvalidArgument "No parameters provided to update."; an operation still in
// progress → Conflict.
func (s *Service) Update(ctx context.Context, upd UpdateOptions) error {
	if upd.Config == nil && upd.Runtime == nil {
		return errcode.New(errcode.InvalidArgument, "No parameters provided to update.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkIdle(ctx); err != nil {
		return err
	}
	next := s.rec
	if upd.Config != nil {
		merged, err := s.rec.Config.Merge(*upd.Config)
		if err != nil {
			return err
		}
		if err := merged.Validate(); err != nil {
			return err
		}
		next.Config = merged
		if upd.Config.PrimaryKey != "" {
			next.PrimaryKey = upd.Config.PrimaryKey
		}
		if upd.Config.SecondaryKey != "" {
			next.SecondaryKey = upd.Config.SecondaryKey
		}
		next.Config.PrimaryKey, next.Config.SecondaryKey = "", ""
	}
	rt := s.rt
	if upd.Runtime != nil {
		rt = *upd.Runtime
		next.ModelIDs = rt.ModelIDs
	}
	if rt.Template.Handler == nil && rt.Template.EntryScript == "" {
		return errcode.Errorf(errcode.FailedPrecondition,
			"service %q was deployed by another process with a Go handler: pass UpdateOptions.Runtime to update it", s.rec.Name)
	}
	next.Generation++
	next.UpdatedTime = time.Now().UTC()
	prev, prevRT := s.rec, s.rt
	s.rec, s.rt = next, rt
	if upd.Runtime != nil {
		if err := s.store.AddModelRefs(ctx, s.rec.Name, rt.ModelIDs); err != nil {
			s.rec, s.rt = prev, prevRT
			return err
		}
	}
	if err := s.apply(ctx); err != nil {
		s.rec, s.rt = prev, prevRT
		return err
	}
	keepRuntime(s.store, s.rec.Name, rt)
	return nil
}

// checkIdle refuses a new operation while one is in progress, as Azure
// does with a 409.
func (s *Service) checkIdle(ctx context.Context) error {
	st, err := s.target.Cluster().ServiceStatus(ctx, s.rec.Name)
	if err != nil {
		return err
	}
	if st.State == driver.Transitioning || st.State == driver.Unschedulable {
		return errcode.Errorf(errcode.Conflict, "service %q: another operation is in progress (state %s); wait for it to finish", s.rec.Name, st.State)
	}
	return nil
}

// Merge applies the non-zero fields (and non-nil *bool fields) of patch to
// c, as Update does: properties may only be added, the namespace never
// changes. The result is not validated.
func (c DeployConfig) Merge(patch DeployConfig) (DeployConfig, error) {
	out := c
	setB := func(dst **bool, v *bool) {
		if v != nil {
			*dst = v
		}
	}
	setI := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setF := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	setB(&out.AutoscaleEnabled, patch.AutoscaleEnabled)
	setB(&out.AuthEnabled, patch.AuthEnabled)
	setB(&out.BlobfuseEnabled, patch.BlobfuseEnabled)
	if patch.AutoscaleEnabled != nil && *patch.AutoscaleEnabled {
		out.NumReplicas = 0
	}
	if patch.NumReplicas != 0 {
		out.AutoscaleEnabled = new(false)
		out.AutoscaleMinReplicas, out.AutoscaleMaxReplicas, out.AutoscaleRefreshSeconds, out.AutoscaleTargetUtilization = 0, 0, 0, 0
	}
	setI(&out.AutoscaleMinReplicas, patch.AutoscaleMinReplicas)
	setI(&out.AutoscaleMaxReplicas, patch.AutoscaleMaxReplicas)
	setI(&out.AutoscaleRefreshSeconds, patch.AutoscaleRefreshSeconds)
	setI(&out.AutoscaleTargetUtilization, patch.AutoscaleTargetUtilization)
	setI(&out.NumReplicas, patch.NumReplicas)
	setF(&out.CPUCores, patch.CPUCores)
	setF(&out.CPUCoresLimit, patch.CPUCoresLimit)
	setF(&out.MemoryGB, patch.MemoryGB)
	setF(&out.MemoryGBLimit, patch.MemoryGBLimit)
	setI(&out.GPUCores, patch.GPUCores)
	if patch.TokenAuthEnabled {
		out.TokenAuthEnabled = true
		if patch.AuthEnabled == nil {
			out.AuthEnabled = new(false)
		}
	} else if patch.AuthEnabled != nil && *patch.AuthEnabled {
		out.TokenAuthEnabled = false
	}
	setI(&out.ScoringTimeoutMs, patch.ScoringTimeoutMs)
	setI(&out.ReplicaMaxConcurrentRequests, patch.ReplicaMaxConcurrentRequests)
	setI(&out.MaxRequestWaitTimeMs, patch.MaxRequestWaitTimeMs)
	setI(&out.MaxBatchSize, patch.MaxBatchSize)
	setI(&out.MaxBatchDelayMs, patch.MaxBatchDelayMs)
	setI(&out.PeriodSeconds, patch.PeriodSeconds)
	setI(&out.InitialDelaySeconds, patch.InitialDelaySeconds)
	setI(&out.TimeoutSeconds, patch.TimeoutSeconds)
	setI(&out.SuccessThreshold, patch.SuccessThreshold)
	setI(&out.FailureThreshold, patch.FailureThreshold)
	if patch.Description != "" {
		out.Description = patch.Description
	}
	if patch.Tags != nil {
		out.Tags = maps.Clone(patch.Tags)
	}
	if patch.CollectModelData {
		out.CollectModelData = true
	}
	if patch.EnableAppInsights {
		out.EnableAppInsights = true
	}
	if patch.Namespace != "" && patch.Namespace != c.Namespace {
		return out, errcode.Errorf(errcode.InvalidArgument, "namespace %q: the namespace of a deployed service cannot change (it is %q)", patch.Namespace, c.Namespace)
	}
	if len(patch.Properties) > 0 {
		out.Properties = maps.Clone(c.Properties)
		if out.Properties == nil {
			out.Properties = map[string]string{}
		}
		for k, v := range patch.Properties {
			if old, ok := c.Properties[k]; ok && old != v {
				return out, errcode.Errorf(errcode.InvalidArgument, "properties[%q] %q: properties are immutable (it is %q); add new keys instead", k, v, old)
			}
			out.Properties[k] = v
		}
	}
	return out, nil
}

// Delete removes the service from its cluster and the workspace (delete),
// releasing its models for deletion.
func (s *Service) Delete(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.target.Cluster().DeleteService(ctx, s.rec.Name)
	if err != nil && !errors.Is(err, errcode.NotFound) {
		return err
	}
	s.store.Local().Delete(recordKind, s.rec.Name)
	return s.store.DeleteWithModelRefs(ctx, recordKind, s.rec.Name, s.rec.Name)
}
