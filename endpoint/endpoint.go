package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/internal/wake"
	"github.com/aksml/aksml/webservice"
)

// MaxVersions is how many versions an endpoint may have.
const MaxVersions = 6

// recordKind is the store kind of endpoint records.
const recordKind = "endpoint"

// VersionType is Control or Treatment (VersionType in the SDK).
type VersionType string

// Version types: exactly one version may be the control.
const (
	Control   VersionType = "Control"
	Treatment VersionType = "Treatment"
)

// Record is what the workspace keeps about an endpoint.
type Record struct {
	Name          string              `json:"name"`
	ComputeTarget string              `json:"computeName"`
	ComputeType   string              `json:"computeType"` // "AKSENDPOINT"
	Description   string              `json:"description,omitempty"`
	Tags          map[string]string   `json:"kvTags,omitempty"`
	Auth          webservice.AuthMode `json:"auth"`
	PrimaryKey    string              `json:"primaryKey,omitempty"`
	SecondaryKey  string              `json:"secondaryKey,omitempty"`
	Versions      []VersionRecord     `json:"versions"`
	ScoringURI    string              `json:"scoringUri"`
	Generation    int64               `json:"generation"`
	CreatedTime   time.Time           `json:"createdTime"`
}

// VersionRecord is one version as the workspace keeps it.
type VersionRecord struct {
	Config        VersionConfig `json:"config"`
	Type          VersionType   `json:"versionType"`
	MirrorPercent float64       `json:"mirrorPercent,omitempty"`
	ModelIDs      []string      `json:"models"`
	ScoringURI    string        `json:"scoringUri"`
	// Runtime is what an entry-script version runs, kept so that another
	// process can change the endpoint; nil for a Go handler.
	Runtime *webservice.Runtime `json:"runtime,omitempty"`
}

// Endpoint is an AksEndpoint: up to six versions behind one scoring URI,
// with traffic percentiles, a default version that takes what no version
// claims, and one control version among treatments. Keys and tokens belong
// to the endpoint. Every change returns once the router applies it; use
// Wait for replicas to become ready.
type Endpoint struct {
	target   *compute.Target
	name     string // e.rec.Name, readable without e.mu (change replaces e.rec)
	store    compute.Store
	client   *http.Client
	poll     time.Duration
	progress io.Writer

	mu       sync.Mutex
	rec      Record
	runtimes map[string]webservice.Runtime
}

// keepRuntimes keeps the version runtimes in the workspace's process-local
// table (Go handlers cannot be stored in the workspace), where Get finds
// them. Each workspace has its own table. Caller holds e.mu or owns e.
func (e *Endpoint) keepRuntimes() {
	e.store.Local().Store(recordKind, e.rec.Name, maps.Clone(e.runtimes))
}

// CreateOptions are the options of Create.
type CreateOptions struct {
	// HTTPClient is used by Run; nil means a shared pooled client.
	HTTPClient *http.Client
	// PollInterval is how often Wait reads the state when the backend does
	// not signal a change (it waits on the cluster's Watch otherwise); 0
	// means compute.DefaultPollInterval.
	PollInterval time.Duration
	// Progress receives show_output-style lines during Wait, one per
	// change of the endpoint's state or reason, as webservice's and
	// compute's Progress do; nil drops them.
	Progress io.Writer
}

// Create makes endpoint name on target with its first version, which
// becomes the default (AksEndpoint deploy). The endpoint's auth, keys,
// description and tags come from first's DeployConfig. It returns at once;
// Wait blocks until every version is ready.
func Create(ctx context.Context, target *compute.Target, name string, first VersionConfig, rt webservice.Runtime, opts *CreateOptions) (*Endpoint, error) {
	if err := errors.Join(webservice.ValidateName(name), first.ValidateFor(name)); err != nil {
		return nil, err
	}
	store := target.Store()
	e := &Endpoint{target: target, name: name, store: store, client: nil, runtimes: map[string]webservice.Runtime{}}
	if opts != nil {
		e.client, e.poll, e.progress = opts.HTTPClient, opts.PollInterval, opts.Progress
	}
	eff := first.Effective()
	first.IsDefault = true
	now := time.Now().UTC()
	e.rec = Record{
		Name: name, ComputeTarget: target.Name(), ComputeType: "AKSENDPOINT",
		Description: eff.Description, Tags: eff.Tags, Auth: eff.Auth,
		PrimaryKey: first.PrimaryKey, SecondaryKey: first.SecondaryKey, Generation: 1, CreatedTime: now,
	}
	if e.rec.PrimaryKey == "" {
		e.rec.PrimaryKey = frontend.GenerateKey()
	}
	if e.rec.SecondaryKey == "" {
		e.rec.SecondaryKey = frontend.GenerateKey()
	}
	first.PrimaryKey, first.SecondaryKey = "", ""
	typ := Treatment
	if first.IsControlVersion {
		typ = Control
	}
	e.rec.Versions = []VersionRecord{{Config: first, Type: typ, ModelIDs: rt.ModelIDs}}
	e.runtimes[first.VersionName] = rt
	b, _ := json.Marshal(e.rec)
	if err := store.CreateWithModelRefs(ctx, recordKind, name, b, refUser(name), rt.ModelIDs); err != nil {
		if errors.Is(err, errcode.AlreadyExists) {
			return nil, errcode.Errorf(errcode.AlreadyExists, "endpoint %q already exists in the workspace", name)
		}
		return nil, err
	}
	if err := e.applyLocked(ctx); err != nil {
		_ = store.DeleteWithModelRefs(context.WithoutCancel(ctx), recordKind, name, refUser(name))
		return nil, err
	}
	e.keepRuntimes()
	return e, nil
}

func refUser(name string) string { return "endpoint/" + name }

// checkRules enforces the endpoint rules on a candidate version list: at
// most six versions, names distinct, percentages summing to at most 100,
// exactly one default, at most one control.
func checkRules(name string, vs []VersionRecord) error {
	var errs []error
	if len(vs) > MaxVersions {
		errs = append(errs, errcode.Errorf(errcode.ResourceExhausted, "endpoint %q: %d versions, at most %d versions are allowed per endpoint", name, len(vs), MaxVersions))
	}
	sum := 0.0
	defaults, controls := 0, 0
	seen := map[string]bool{}
	for _, v := range vs {
		if seen[v.Config.VersionName] {
			errs = append(errs, errcode.Errorf(errcode.AlreadyExists, "endpoint %q: version %q already exists", name, v.Config.VersionName))
		}
		seen[v.Config.VersionName] = true
		// UpdateVersion sets percentages without VersionConfig.Validate: a
		// NaN or negative value would pass the sum check, be refused by the
		// router and not encode to JSON.
		if p := v.Config.TrafficPercentile; !(p >= MinTrafficPercentile && p <= MaxTrafficPercentile) {
			errs = append(errs, invalidConfig("traffic_percentile %v of version %q must be between %d and %d", p, v.Config.VersionName, MinTrafficPercentile, MaxTrafficPercentile))
		}
		sum += v.Config.TrafficPercentile
		if v.Config.IsDefault {
			defaults++
		}
		if v.Type == Control {
			controls++
		}
	}
	if sum > 100+1e-9 {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "endpoint %q: traffic_percentile values sum to %v, at most 100 is allowed", name, sum))
	}
	if defaults != 1 && len(vs) > 0 {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "endpoint %q: %d default versions, exactly one is required", name, defaults))
	}
	if controls > 1 {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "endpoint %q: %d control versions, at most one is allowed", name, controls))
	}
	return errors.Join(errs...)
}

// spec builds the driver spec. Caller holds e.mu.
func (e *Endpoint) spec() (*driver.ServiceSpec, error) {
	sp := &driver.ServiceSpec{
		Name: e.rec.Name, Description: e.rec.Description, Tags: maps.Clone(e.rec.Tags), IsEndpoint: true,
		Auth:       e.rec.Auth.Driver(e.rec.PrimaryKey, e.rec.SecondaryKey),
		Generation: e.rec.Generation,
	}
	for _, v := range e.rec.Versions {
		rt, ok := e.runtimes[v.Config.VersionName]
		if !ok || (rt.Template.Handler == nil && rt.Template.EntryScript == "") {
			return nil, errcode.Errorf(errcode.FailedPrecondition,
				"endpoint %q version %q was created by another process with a Go handler: pass its runtime again to change the endpoint", e.rec.Name, v.Config.VersionName)
		}
		if sp.Namespace == "" {
			sp.Namespace = v.Config.Effective().Namespace
		}
		vs := v.Config.DeployConfig.Version(v.Config.VersionName, rt.Template)
		vs.TrafficPercent, vs.IsDefault, vs.IsControl, vs.MirrorPercent = v.Config.TrafficPercentile, v.Config.IsDefault, v.Type == Control, v.MirrorPercent
		sp.Versions = append(sp.Versions, vs)
	}
	return sp, nil
}

// applyLocked checks the rules, applies the spec, records model references
// and saves the record. Caller holds e.mu (or owns e).
func (e *Endpoint) applyLocked(ctx context.Context) error {
	if err := checkRules(e.rec.Name, e.rec.Versions); err != nil {
		return err
	}
	sp, err := e.spec()
	if err != nil {
		return err
	}
	var ids []string
	for _, v := range e.rec.Versions {
		ids = append(ids, v.ModelIDs...)
	}
	slices.Sort(ids)
	if err := e.store.AddModelRefs(ctx, refUser(e.rec.Name), slices.Compact(ids)); err != nil {
		return err
	}
	if err := e.target.Cluster().ApplyService(ctx, sp); err != nil {
		return fmt.Errorf("endpoint %q: %w", e.rec.Name, err)
	}
	if st, err := e.target.Cluster().ServiceStatus(ctx, e.rec.Name); err == nil {
		e.rec.ScoringURI = st.ScoringURI
		for i := range e.rec.Versions {
			for _, vs := range st.Versions {
				if vs.Name == e.rec.Versions[i].Config.VersionName {
					e.rec.Versions[i].ScoringURI = vs.ScoringURI
				}
			}
		}
	}
	for i := range e.rec.Versions {
		e.rec.Versions[i].Runtime = webservice.StoredRuntime(e.runtimes[e.rec.Versions[i].Config.VersionName])
	}
	b, _ := json.Marshal(e.rec)
	if err := e.store.Put(ctx, recordKind, e.rec.Name, b); err != nil {
		return err
	}
	e.keepRuntimes()
	return nil
}

// change runs fn on a copy of the record and applies the result; on any
// error the endpoint is left as it was.
func (e *Endpoint) change(ctx context.Context, fn func(rec *Record, rts map[string]webservice.Runtime) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	prev, prevRT := e.rec, e.runtimes
	next := prev
	next.Versions = slices.Clone(prev.Versions)
	next.Tags = maps.Clone(prev.Tags)
	rts := maps.Clone(prevRT)
	if err := fn(&next, rts); err != nil {
		return err
	}
	next.Generation++
	e.rec, e.runtimes = next, rts
	if err := e.applyLocked(ctx); err != nil {
		e.rec, e.runtimes = prev, prevRT
		return err
	}
	return nil
}

func (r *Record) index(version string) int {
	return slices.IndexFunc(r.Versions, func(v VersionRecord) bool { return v.Config.VersionName == version })
}

// setDefault makes version i the only default.
func (r *Record) setDefault(i int) {
	for j := range r.Versions {
		r.Versions[j].Config.IsDefault = j == i
	}
}

// setControl makes version i the only control, the others treatments.
func (r *Record) setControl(i int) {
	for j := range r.Versions {
		if j == i {
			r.Versions[j].Type = Control
		} else {
			r.Versions[j].Type = Treatment
		}
	}
}

// CreateVersion adds a version (create_version). With IsDefault it becomes
// the default and the others stop being; with IsControlVersion it becomes
// the control and the others treatments. A seventh version, a name in use,
// or percentages over 100 are refused and change nothing.
func (e *Endpoint) CreateVersion(ctx context.Context, cfg VersionConfig, rt webservice.Runtime) error {
	if err := cfg.ValidateFor(e.name); err != nil {
		return err
	}
	return e.change(ctx, func(rec *Record, rts map[string]webservice.Runtime) error {
		if rec.index(cfg.VersionName) >= 0 {
			return errcode.Errorf(errcode.AlreadyExists, "endpoint %q: version %q already exists", rec.Name, cfg.VersionName)
		}
		if len(rec.Versions) >= MaxVersions {
			return errcode.Errorf(errcode.ResourceExhausted, "endpoint %q already has %d versions, the most an endpoint may have", rec.Name, MaxVersions)
		}
		cfg.PrimaryKey, cfg.SecondaryKey = "", ""
		rec.Versions = append(rec.Versions, VersionRecord{Config: cfg, Type: Treatment, ModelIDs: rt.ModelIDs})
		i := len(rec.Versions) - 1
		if cfg.IsDefault {
			rec.setDefault(i)
		}
		if cfg.IsControlVersion {
			rec.setControl(i)
		}
		rts[cfg.VersionName] = rt
		return nil
	})
}

// VersionUpdate says what UpdateVersion changes; nil fields stay.
type VersionUpdate struct {
	TrafficPercentile *float64
	IsDefault         *bool
	IsControlVersion  *bool
	// MirrorPercent copies that share of the endpoint's live traffic to the
	// version; its responses are discarded. 0 stops mirroring.
	MirrorPercent *float64
	Description   *string
	Tags          map[string]string
	// Config holds deploy-config fields to change (see webservice.UpdateOptions).
	Config *webservice.DeployConfig
	// Runtime replaces the models or inference config; the version's
	// replicas roll, new ones ready before old ones leave.
	Runtime *webservice.Runtime
}

// UpdateVersion changes one version (update_version). Making it the
// default un-defaults the others; making it the control turns the others
// into treatments. A version cannot stop being the default by itself: name
// another default instead.
func (e *Endpoint) UpdateVersion(ctx context.Context, version string, upd VersionUpdate) error {
	return e.change(ctx, func(rec *Record, rts map[string]webservice.Runtime) error {
		i := rec.index(version)
		if i < 0 {
			return errcode.Errorf(errcode.NotFound, "endpoint %q has no version %q", rec.Name, version)
		}
		v := &rec.Versions[i]
		if p := upd.TrafficPercentile; p != nil {
			v.Config.TrafficPercentile = *p
		}
		if p := upd.MirrorPercent; p != nil {
			if !(*p >= 0 && *p <= 100) { // NaN too
				return errcode.Errorf(errcode.InvalidArgument, "mirror_percent %v must be between 0 and 100", *p)
			}
			v.MirrorPercent = *p
		}
		if upd.IsDefault != nil {
			if *upd.IsDefault {
				rec.setDefault(i)
			} else if v.Config.IsDefault {
				return errcode.Errorf(errcode.FailedPrecondition, "endpoint %q: version %q is the default; make another version the default instead", rec.Name, version)
			}
		}
		if upd.IsControlVersion != nil {
			if *upd.IsControlVersion {
				rec.setControl(i)
			} else {
				v.Type = Treatment
			}
		}
		if upd.Description != nil {
			v.Config.Description = *upd.Description
		}
		if upd.Tags != nil {
			v.Config.Tags = maps.Clone(upd.Tags)
		}
		if upd.Config != nil {
			cfg, err := v.Config.DeployConfig.Merge(*upd.Config)
			if err != nil {
				return err
			}
			next := v.Config
			next.DeployConfig = cfg
			if err := next.ValidateFor(rec.Name); err != nil {
				return err
			}
			v.Config = next
		}
		if upd.Runtime != nil {
			rts[version] = *upd.Runtime
			v.ModelIDs = upd.Runtime.ModelIDs
		}
		return nil
	})
}

// DeleteVersion removes a version (delete_version). The default version
// cannot be deleted until another is the default.
func (e *Endpoint) DeleteVersion(ctx context.Context, version string) error {
	return e.change(ctx, func(rec *Record, rts map[string]webservice.Runtime) error {
		i := rec.index(version)
		if i < 0 {
			return errcode.Errorf(errcode.NotFound, "endpoint %q has no version %q", rec.Name, version)
		}
		if rec.Versions[i].Config.IsDefault {
			return errcode.Errorf(errcode.FailedPrecondition, "endpoint %q: version %q is the default and cannot be deleted; make another version the default first", rec.Name, version)
		}
		rec.Versions = slices.Delete(rec.Versions, i, i+1)
		delete(rts, version)
		return nil
	})
}

// Update changes endpoint-level settings (update): auth, description, tags.
type Update struct {
	AuthEnabled      *bool
	TokenAuthEnabled *bool
	Description      *string
	Tags             map[string]string
}

// Update changes the endpoint's auth, description or tags.
func (e *Endpoint) Update(ctx context.Context, upd Update) error {
	if upd.AuthEnabled == nil && upd.TokenAuthEnabled == nil && upd.Description == nil && upd.Tags == nil {
		return errcode.New(errcode.InvalidArgument, "No parameters provided to update.")
	}
	return e.change(ctx, func(rec *Record, _ map[string]webservice.Runtime) error {
		key := rec.Auth == webservice.AuthKey
		token := rec.Auth == webservice.AuthToken
		if upd.AuthEnabled != nil {
			key = *upd.AuthEnabled
		}
		if upd.TokenAuthEnabled != nil {
			token = *upd.TokenAuthEnabled
		}
		switch {
		case key && token:
			return errcode.New(errcode.InvalidArgument, "Invalid configuration, auth_enabled and token_auth_enabled cannot both be true.")
		case key:
			rec.Auth = webservice.AuthKey
		case token:
			rec.Auth = webservice.AuthToken
		default:
			rec.Auth = webservice.AuthNone
		}
		if upd.Description != nil {
			rec.Description = *upd.Description
		}
		if upd.Tags != nil {
			rec.Tags = maps.Clone(upd.Tags)
		}
		return nil
	})
}

// Get returns endpoint name recorded in target's workspace.
func Get(ctx context.Context, target *compute.Target, name string) (*Endpoint, error) {
	store := target.Store()
	rec, err := load(ctx, store, name)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{target: target, name: rec.Name, store: store, rec: rec, runtimes: map[string]webservice.Runtime{}}
	if rts, ok := store.Local().Load(recordKind, name); ok {
		e.runtimes = maps.Clone(rts.(map[string]webservice.Runtime))
	}
	for _, v := range rec.Versions {
		if _, ok := e.runtimes[v.Config.VersionName]; !ok && v.Runtime != nil {
			e.runtimes[v.Config.VersionName] = *v.Runtime
		}
	}
	return e, nil
}

// List returns the records of every endpoint in the store, by name.
func List(ctx context.Context, store compute.Store) ([]Record, error) {
	return compute.ListRecords[Record](ctx, store, recordKind, "endpoint")
}

func load(ctx context.Context, store compute.Store, name string) (Record, error) {
	return compute.LoadRecord[Record](ctx, store, recordKind, "endpoint", name)
}

// Delete removes the endpoint and every version (delete).
func (e *Endpoint) Delete(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.target.Cluster().DeleteService(ctx, e.rec.Name); err != nil && !errors.Is(err, errcode.NotFound) {
		return err
	}
	e.store.Local().Delete(recordKind, e.rec.Name)
	return e.store.DeleteWithModelRefs(ctx, recordKind, e.rec.Name, refUser(e.rec.Name))
}

// Name is the endpoint's name.
func (e *Endpoint) Name() string { return e.name }

// Record returns what the workspace keeps about the endpoint.
func (e *Endpoint) Record() Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rec
	r.Versions = slices.Clone(r.Versions)
	return r
}

// Versions returns the version names, in creation order.
func (e *Endpoint) Versions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.rec.Versions))
	for i, v := range e.rec.Versions {
		out[i] = v.Config.VersionName
	}
	return out
}

// ScoringURI is the endpoint's URI: http://<cluster>/api/v1/service/<name>/score.
// After the target's TLS setting changes it is on the new base.
func (e *Endpoint) ScoringURI() string {
	e.mu.Lock()
	uri := e.rec.ScoringURI
	e.mu.Unlock()
	return e.target.ScoringURI(context.Background(), uri)
}

// VersionScoringURI is one version's own URI,
// …/api/v1/service/<endpoint>/versions/<version>/score.
func (e *Endpoint) VersionScoringURI(version string) (string, error) {
	e.mu.Lock()
	i := e.rec.index(version)
	if i < 0 {
		e.mu.Unlock()
		return "", errcode.Errorf(errcode.NotFound, "endpoint %q has no version %q", e.rec.Name, version)
	}
	uri := e.rec.Versions[i].ScoringURI
	e.mu.Unlock()
	return e.target.ScoringURI(context.Background(), uri), nil
}

// Status returns the endpoint's state and each version's; a version with
// no ready replica has ServesTraffic false and its share goes to the
// default version.
func (e *Endpoint) Status(ctx context.Context) (*driver.ServiceStatus, error) {
	return e.target.Cluster().ServiceStatus(ctx, e.name)
}

// Wait blocks until every version is ready (Healthy) and returns an error
// naming the state and reason when the endpoint Failed.
func (e *Endpoint) Wait(ctx context.Context) error {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	changes := e.target.Cluster().Watch(wctx)
	var last *driver.ServiceStatus
	err := wake.Until(ctx, changes, compute.PollInterval(e.poll), func() (bool, error) {
		st, err := e.Status(ctx)
		if err != nil {
			return false, err
		}
		if e.progress != nil && (last == nil || st.State != last.State || st.Message != last.Message) {
			fmt.Fprintf(e.progress, "%s endpoint %s: %s\n", time.Now().Format("2006-01-02 15:04:05"), e.name, st.Summary())
		}
		last = st
		switch st.State {
		case driver.Healthy:
			return true, nil
		case driver.Failed:
			return false, errcode.Errorf(errcode.FailedPrecondition, "Endpoint deployment polling reached non-successful terminal state, current state: %s\nError:\n%s", st.State, st.Message)
		}
		return false, nil
	})
	if err != nil && last != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return errcode.Wrap(errcode.DeadlineExceeded, fmt.Errorf("waiting for endpoint %q (state %s: %s): %w", e.name, last.State, last.Message, err))
	}
	return err
}

// Keys returns the endpoint's primary and secondary keys.
func (e *Endpoint) Keys() (primary, secondary string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rec.Auth != webservice.AuthKey {
		return "", "", errcode.Errorf(errcode.FailedPrecondition, "endpoint %q does not use key auth", e.rec.Name)
	}
	return e.rec.PrimaryKey, e.rec.SecondaryKey, nil
}

// RegenKey replaces the primary or secondary key; empty value means a new
// random key. The old value is rejected once RegenKey returns.
func (e *Endpoint) RegenKey(ctx context.Context, key webservice.KeyType, value string) error {
	k, err := webservice.ParseKeyType(key)
	if err != nil {
		return err
	}
	if value == "" {
		value = frontend.GenerateKey()
	}
	return e.change(ctx, func(rec *Record, _ map[string]webservice.Runtime) error {
		if rec.Auth != webservice.AuthKey {
			return errcode.Errorf(errcode.FailedPrecondition, "endpoint %q does not use key auth", rec.Name)
		}
		if k == webservice.Primary {
			rec.PrimaryKey = value
		} else {
			rec.SecondaryKey = value
		}
		return nil
	})
}

// Token returns an access token for a token-auth endpoint.
func (e *Endpoint) Token(ctx context.Context) (driver.Token, error) {
	return e.target.Cluster().IssueToken(ctx, e.name)
}

// Run scores input through the endpoint's traffic rules, with the
// endpoint's key or token (see webservice.Service.Run).
func (e *Endpoint) Run(ctx context.Context, input any) (json.RawMessage, error) {
	client, err := webservice.ClientFor(ctx, e.client, e.target)
	if err != nil {
		return nil, err
	}
	return webservice.Score(ctx, client, e.ScoringURI(), input, e.credential)
}

// RunServed is Run that also returns the name of the version that
// answered, as the traffic rules picked it.
func (e *Endpoint) RunServed(ctx context.Context, input any) (json.RawMessage, string, error) {
	client, err := webservice.ClientFor(ctx, e.client, e.target)
	if err != nil {
		return nil, "", err
	}
	return webservice.ScoreServed(ctx, client, e.ScoringURI(), input, e.credential)
}

// RunVersion scores input on one version, whatever the weights.
func (e *Endpoint) RunVersion(ctx context.Context, version string, input any) (json.RawMessage, error) {
	uri, err := e.VersionScoringURI(version)
	if err != nil {
		return nil, err
	}
	client, err := webservice.ClientFor(ctx, e.client, e.target)
	if err != nil {
		return nil, err
	}
	return webservice.Score(ctx, client, uri, input, e.credential)
}

func (e *Endpoint) credential(ctx context.Context, refresh bool) (string, error) {
	e.mu.Lock()
	if refresh {
		if rec, err := load(ctx, e.store, e.rec.Name); err == nil {
			e.rec.PrimaryKey, e.rec.SecondaryKey = rec.PrimaryKey, rec.SecondaryKey
		}
	}
	mode, key := e.rec.Auth, e.rec.PrimaryKey
	e.mu.Unlock()
	switch mode {
	case webservice.AuthKey:
		return key, nil
	case webservice.AuthToken:
		t, err := e.Token(ctx)
		return t.AccessToken, err
	}
	return "", nil
}
