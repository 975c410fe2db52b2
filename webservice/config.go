package webservice

import (
	"errors"
	"maps"
	"math"
	"regexp"
	"time"

	"github.com/aksml/aksml/errcode"
)

// Defaults the Azure ML service applies to a deploy configuration field left
// unset (None in the SDK), and the limits it enforces.
const (
	DefaultAutoscaleMinReplicas       = 1
	DefaultAutoscaleMaxReplicas       = 10
	DefaultAutoscaleRefreshSeconds    = 1
	DefaultAutoscaleTargetUtilization = 70 // percent

	DefaultCPUCores = 0.1 // the pod's CPU request
	DefaultMemoryGB = 0.5 // the pod's memory request, in GB
	// DefaultGPUCores is 0. The SDK docstring says 0 and the deploy-config
	// table of the docs says 1; aksml takes 0, so that a default deployment
	// schedules on a cluster without GPUs. Set GPUCores to request GPUs.
	DefaultGPUCores = 0

	DefaultScoringTimeoutMs = 60000
	// MaxScoringTimeoutMs is the service's cap: a longer timeout fails the
	// deployment or update (MachineLearningNotebooks#1624).
	MaxScoringTimeoutMs                 = 300000
	DefaultReplicaMaxConcurrentRequests = 1
	DefaultMaxRequestWaitTimeMs         = 500

	// MaxBatchSizeLimit and MaxBatchDelayMsLimit bound the request
	// batching fields (an aksml extension, off by default).
	MaxBatchSizeLimit    = 1024
	MaxBatchDelayMsLimit = 10000

	DefaultPeriodSeconds       = 10
	DefaultInitialDelaySeconds = 310
	// DefaultTimeoutSeconds is 1. The SDK docstring says 2, but
	// LivenessProbeRequirements.deserialize(None), which gives the values
	// the service runs with when none are sent, uses 1 — as does
	// Kubernetes. aksml takes 1; set TimeoutSeconds to change it.
	DefaultTimeoutSeconds   = 1
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// AuthMode is how callers of a service authenticate.
type AuthMode string

// Authentication modes.
const (
	// AuthNone lets every caller in.
	AuthNone AuthMode = "none"
	// AuthKey requires "Authorization: Bearer <primary or secondary key>".
	AuthKey AuthMode = "key"
	// AuthToken requires "Authorization: Bearer <access token>".
	AuthToken AuthMode = "token"
)

// DeployConfig is the deployment configuration of a service on a cluster,
// the parameters of AksWebservice.deploy_configuration. Every field is
// optional: the zero value of a field means what None means in the SDK, the
// service default (see Effective). The three *bool fields distinguish "not
// given" from false, because the defaults or the rules depend on it; set
// them with new(true) or new(false).
//
// Go code cannot express an explicit 0 for a field that must be greater than
// zero; decoding deploymentconfig.json reports one.
type DeployConfig struct {
	// AutoscaleEnabled turns the autoscaler on or off
	// (autoscale_enabled). Unset, it is on unless NumReplicas is given. The
	// Autoscale* fields below may only be given with AutoscaleEnabled true.
	AutoscaleEnabled *bool
	// AutoscaleMinReplicas is the fewest replicas (autoscale_min_replicas): 1.
	AutoscaleMinReplicas int
	// AutoscaleMaxReplicas is the most replicas (autoscale_max_replicas): 10.
	AutoscaleMaxReplicas int
	// AutoscaleRefreshSeconds is how often the autoscaler decides
	// (autoscale_refresh_seconds): 1.
	AutoscaleRefreshSeconds int
	// AutoscaleTargetUtilization is the busy share of replicas, in percent,
	// the autoscaler aims at (autoscale_target_utilization): 70.
	AutoscaleTargetUtilization int
	// NumReplicas is the fixed replica count with the autoscaler off
	// (num_replicas); no default.
	NumReplicas int

	// CPUCores is the CPU request of each replica (cpu_cores): 0.1.
	CPUCores float64
	// CPUCoresLimit is the CPU limit (cpu_cores_limit), at least CPUCores;
	// zero means no limit.
	CPUCoresLimit float64
	// MemoryGB is the memory request in GB (memory_gb): 0.5.
	MemoryGB float64
	// MemoryGBLimit is the memory limit (memory_gb_limit), at least
	// MemoryGB; zero means no limit.
	MemoryGBLimit float64
	// GPUCores is the number of GPUs of each replica (gpu_cores): 0.
	GPUCores int

	// AuthEnabled turns key authentication on or off (auth_enabled). Unset,
	// it is on unless TokenAuthEnabled is true.
	AuthEnabled *bool
	// TokenAuthEnabled turns token authentication on (token_auth_enabled);
	// it cannot be combined with AuthEnabled true.
	TokenAuthEnabled bool
	// PrimaryKey and SecondaryKey are the auth keys (primary_key,
	// secondary_key); empty ones are generated.
	PrimaryKey, SecondaryKey string

	// ScoringTimeoutMs is how long a scoring call may take, in milliseconds
	// (scoring_timeout_ms): 60000, at most 300000.
	ScoringTimeoutMs int
	// ReplicaMaxConcurrentRequests is how many requests a replica handles
	// at once (replica_max_concurrent_requests): 1.
	ReplicaMaxConcurrentRequests int
	// MaxRequestWaitTimeMs is how long a request may queue for a free
	// replica before a 503, in milliseconds (max_request_wait_time): 500.
	MaxRequestWaitTimeMs int

	// MaxBatchSize turns request batching on, an aksml extension Azure ML
	// v1 does not have (max_batch_size; "aksml": {"maxBatchSize": N} in
	// deploymentconfig.json): each replica gathers up to MaxBatchSize
	// concurrent requests and gives them together to the entry script's
	// run_batch(inputs) (a Go handler's RunBatch). Zero means off; at most
	// MaxBatchSizeLimit. A replica only sees ReplicaMaxConcurrentRequests
	// requests at once, so set that at least as high. See docs/batching.md.
	MaxBatchSize int
	// MaxBatchDelayMs is the longest, in milliseconds, the oldest request
	// of a batch that is not full waits for more before the batch leaves
	// (max_batch_delay_ms; "aksml": {"maxBatchDelayMs": D}); a replica
	// waits only when no other worker is free (docs/batching.md): 0, no waiting
	// (a batch is what has queued when a worker is free); at most
	// MaxBatchDelayMsLimit, and only with MaxBatchSize.
	MaxBatchDelayMs int

	// PeriodSeconds is the liveness probe interval (period_seconds): 10.
	PeriodSeconds int
	// InitialDelaySeconds is the delay before the first probe
	// (initial_delay_seconds): 310.
	InitialDelaySeconds int
	// TimeoutSeconds is the probe timeout (timeout_seconds): 1.
	TimeoutSeconds int
	// SuccessThreshold is how many successes mark a replica live again
	// (success_threshold): 1.
	SuccessThreshold int
	// FailureThreshold is how many failures restart a replica
	// (failure_threshold): 3.
	FailureThreshold int

	// Namespace is the Kubernetes namespace of the service (namespace).
	Namespace string
	// ComputeTargetName names the compute target to deploy to
	// (compute_target_name).
	ComputeTargetName string
	// Description, Tags and Properties describe the service (description,
	// tags, properties); properties are never changed once set, only added.
	Description string
	Tags        map[string]string
	Properties  map[string]string
	// CollectModelData stores model inputs and outputs (collect_model_data).
	CollectModelData bool
	// EnableAppInsights sends telemetry to Application Insights
	// (enable_app_insights).
	EnableAppInsights bool
	// BlobfuseEnabled mounts model storage with blobfuse instead of copying
	// it at start (blobfuse_enabled): true when unset. deploymentconfig.json
	// has no key for it.
	BlobfuseEnabled *bool
}

// namespaceRegexp is the SDK's NAMESPACE_REGEX, ^[a-z0-9]([a-z0-9-]{,61}[a-z0-9])?$.
var namespaceRegexp = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate reports every rule c breaks, as one error joining an
// errcode.InvalidArgument error per rule, or nil. The rules are the SDK's
// client-side checks, in its order and wording, with the value added:
//   - cpu_cores, memory_gb, the liveness probe settings, scoring_timeout_ms,
//     replica_max_concurrent_requests, max_request_wait_time, num_replicas
//     and the limits, when given, must be greater than zero; gpu_cores must
//     not be negative;
//   - cpu_cores_limit and memory_gb_limit must not be below the request
//     (the default request when none is given);
//   - namespace must match ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$;
//   - with autoscale_enabled true: no num_replicas; min, max, refresh and
//     target greater than zero; min not above max (defaults included);
//   - otherwise: autoscale_enabled false needs num_replicas, and no
//     autoscale_* value may be given, even with autoscale_enabled unset;
//   - auth_enabled and token_auth_enabled cannot both be true;
//
// plus the service's cap: scoring_timeout_ms at most 300000.
func (c DeployConfig) Validate() error {
	return errors.Join(c.problems()...)
}

func (c DeployConfig) problems() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, invalidConfig(format, args...)) }
	positiveFloat := func(name string, v float64) bool {
		switch {
		case v == 0:
			return false
		case math.IsNaN(v) || math.IsInf(v, 0):
			add("%s %v must be a finite number greater than zero", name, v)
			return false
		case v < 0:
			add("%s %v must be greater than zero", name, v)
			return false
		}
		return true
	}
	positiveInt := func(name string, v int) {
		if v < 0 {
			add("%s %d must be greater than zero", name, v)
		}
	}

	// The limits are compared with the request given, or with the default
	// request when none is given (not with an invalid one).
	cpuOK := positiveFloat("cpu_cores", c.CPUCores)
	cpu, cpuDesc := c.CPUCores, ""
	if c.CPUCores == 0 {
		cpu, cpuDesc, cpuOK = DefaultCPUCores, " (the default)", true
	}
	if positiveFloat("cpu_cores_limit", c.CPUCoresLimit) && cpuOK && c.CPUCoresLimit < cpu {
		add("cpu_cores_limit %v must be greater than or equal to cpu_cores %v%s", c.CPUCoresLimit, cpu, cpuDesc)
	}
	memOK := positiveFloat("memory_gb", c.MemoryGB)
	mem, memDesc := c.MemoryGB, ""
	if c.MemoryGB == 0 {
		mem, memDesc, memOK = DefaultMemoryGB, " (the default)", true
	}
	if positiveFloat("memory_gb_limit", c.MemoryGBLimit) && memOK && c.MemoryGBLimit < mem {
		add("memory_gb_limit %v must be greater than or equal to memory_gb %v%s", c.MemoryGBLimit, mem, memDesc)
	}
	if c.GPUCores < 0 {
		add("gpu_cores %d must be greater than or equal to zero", c.GPUCores)
	}
	positiveInt("period_seconds", c.PeriodSeconds)
	positiveInt("initial_delay_seconds", c.InitialDelaySeconds)
	positiveInt("timeout_seconds", c.TimeoutSeconds)
	positiveInt("success_threshold", c.SuccessThreshold)
	positiveInt("failure_threshold", c.FailureThreshold)
	if c.Namespace != "" && !namespaceRegexp.MatchString(c.Namespace) {
		add("namespace %q must be a valid Kubernetes namespace (regex %s)", c.Namespace, namespaceRegexp)
	}
	positiveInt("scoring_timeout_ms", c.ScoringTimeoutMs)
	if c.ScoringTimeoutMs > MaxScoringTimeoutMs {
		add("scoring_timeout_ms %d is above the %d ms the service allows", c.ScoringTimeoutMs, MaxScoringTimeoutMs)
	}
	positiveInt("replica_max_concurrent_requests", c.ReplicaMaxConcurrentRequests)
	if c.MaxBatchSize < 0 || c.MaxBatchSize > MaxBatchSizeLimit {
		add("max_batch_size %d must be between 1 and %d (leave it unset to turn batching off)", c.MaxBatchSize, MaxBatchSizeLimit)
	}
	switch {
	case c.MaxBatchDelayMs < 0 || c.MaxBatchDelayMs > MaxBatchDelayMsLimit:
		add("max_batch_delay_ms %d must be between 0 and %d", c.MaxBatchDelayMs, MaxBatchDelayMsLimit)
	case c.MaxBatchDelayMs > 0 && c.MaxBatchSize == 0:
		add("max_batch_delay_ms %d given without max_batch_size; batching is off until max_batch_size is set", c.MaxBatchDelayMs)
	}
	positiveInt("max_request_wait_time", c.MaxRequestWaitTimeMs)
	positiveInt("num_replicas", c.NumReplicas)

	if c.AutoscaleEnabled != nil && *c.AutoscaleEnabled {
		if c.NumReplicas != 0 {
			add("autoscale enabled and num_replicas %d provided; give one or the other", c.NumReplicas)
		}
		positiveInt("autoscale_min_replicas", c.AutoscaleMinReplicas)
		positiveInt("autoscale_max_replicas", c.AutoscaleMaxReplicas)
		minR, maxR, minDesc, maxDesc := c.AutoscaleMinReplicas, c.AutoscaleMaxReplicas, "", ""
		if minR <= 0 {
			minR, minDesc = DefaultAutoscaleMinReplicas, " (the default)"
		}
		if maxR <= 0 {
			maxR, maxDesc = DefaultAutoscaleMaxReplicas, " (the default)"
		}
		if minR > maxR {
			add("autoscale_min_replicas %d%s cannot be greater than autoscale_max_replicas %d%s", minR, minDesc, maxR, maxDesc)
		}
		positiveInt("autoscale_refresh_seconds", c.AutoscaleRefreshSeconds)
		positiveInt("autoscale_target_utilization", c.AutoscaleTargetUtilization)
	} else {
		if c.AutoscaleEnabled != nil && c.NumReplicas == 0 {
			add("autoscale disabled but num_replicas not provided")
		}
		for _, f := range []struct {
			name  string
			value int
		}{
			{"autoscale_min_replicas", c.AutoscaleMinReplicas},
			{"autoscale_max_replicas", c.AutoscaleMaxReplicas},
			{"autoscale_refresh_seconds", c.AutoscaleRefreshSeconds},
			{"autoscale_target_utilization", c.AutoscaleTargetUtilization},
		} {
			if f.value != 0 {
				add("%s %d provided without enabling autoscaling (set autoscale_enabled to true)", f.name, f.value)
			}
		}
	}
	if c.TokenAuthEnabled && c.AuthEnabled != nil && *c.AuthEnabled {
		add("auth_enabled and token_auth_enabled cannot both be true")
	}
	return errs
}

// EffectiveConfig is a DeployConfig with every default resolved: the values
// a backend runs a service with.
type EffectiveConfig struct {
	// Autoscale is whether the autoscaler runs.
	Autoscale bool
	// Replicas is the fixed replica count without autoscaling, and the
	// starting count (MinReplicas) with it.
	Replicas int
	// MinReplicas, MaxReplicas, RefreshPeriod and TargetUtilization
	// (percent) steer the autoscaler; they hold their defaults when
	// Autoscale is false.
	MinReplicas, MaxReplicas int
	RefreshPeriod            time.Duration
	TargetUtilization        int

	// CPUCores and MemoryGB are the requests of each replica; the limits
	// are zero when there is none. GPUCores is the GPU count.
	CPUCores, CPUCoresLimit float64
	MemoryGB, MemoryGBLimit float64
	GPUCores                int

	// Auth is the authentication mode; PrimaryKey and SecondaryKey are the
	// given keys, empty when they are to be generated.
	Auth                     AuthMode
	PrimaryKey, SecondaryKey string

	// ScoringTimeout bounds a scoring call; MaxConcurrentRequests is a
	// replica's concurrency; MaxRequestWait is how long a request queues
	// before a 503.
	ScoringTimeout        time.Duration
	MaxConcurrentRequests int
	MaxRequestWait        time.Duration
	// MaxBatchSize (0: batching off) and MaxBatchDelay are the request
	// batching of each replica.
	MaxBatchSize  int
	MaxBatchDelay time.Duration

	// Liveness is the replicas' liveness probe.
	Liveness LivenessProbe

	// Namespace, ComputeTargetName and Description are copied from the
	// config; an empty Namespace means the backend's default namespace.
	Namespace         string
	ComputeTargetName string
	Description       string
	// Tags and Properties are copies of the config's maps (nil when empty).
	Tags, Properties map[string]string
	// CollectModelData, AppInsights and Blobfuse are the resolved flags
	// collect_model_data, enable_app_insights and blobfuse_enabled.
	CollectModelData bool
	AppInsights      bool
	Blobfuse         bool
}

// LivenessProbe is a resolved liveness probe: probe every Period, the first
// time after InitialDelay, each probe failing after Timeout; SuccessThreshold
// successes mark a replica live, FailureThreshold failures restart it.
type LivenessProbe struct {
	Period, InitialDelay, Timeout      time.Duration
	SuccessThreshold, FailureThreshold int
}

// Effective resolves every unset field of c to the value the service uses:
// autoscaling on when NumReplicas is unset (then min 1, max 10, refresh 1 s,
// target 70 %); CPU 0.1; memory 0.5 GB; GPU 0; key auth unless token auth is
// on (or auth is off); scoring timeout 60 s; 1 concurrent request per
// replica; 500 ms queue wait; probe every 10 s after 310 s, timeout 1 s, 1
// success, 3 failures; blobfuse on. It assumes c is valid; for an invalid c
// the result is unspecified beyond not panicking.
func (c DeployConfig) Effective() EffectiveConfig {
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	pickF := func(v, def float64) float64 {
		if v > 0 && !math.IsInf(v, 0) {
			return v
		}
		return def
	}
	limit := func(v float64) float64 {
		if v > 0 && !math.IsInf(v, 0) {
			return v
		}
		return 0
	}
	e := EffectiveConfig{
		MinReplicas:       pick(c.AutoscaleMinReplicas, DefaultAutoscaleMinReplicas),
		MaxReplicas:       pick(c.AutoscaleMaxReplicas, DefaultAutoscaleMaxReplicas),
		RefreshPeriod:     time.Duration(pick(c.AutoscaleRefreshSeconds, DefaultAutoscaleRefreshSeconds)) * time.Second,
		TargetUtilization: pick(c.AutoscaleTargetUtilization, DefaultAutoscaleTargetUtilization),

		CPUCores:      pickF(c.CPUCores, DefaultCPUCores),
		CPUCoresLimit: limit(c.CPUCoresLimit),
		MemoryGB:      pickF(c.MemoryGB, DefaultMemoryGB),
		MemoryGBLimit: limit(c.MemoryGBLimit),
		GPUCores:      max(c.GPUCores, DefaultGPUCores),

		PrimaryKey:   c.PrimaryKey,
		SecondaryKey: c.SecondaryKey,

		ScoringTimeout:        time.Duration(pick(c.ScoringTimeoutMs, DefaultScoringTimeoutMs)) * time.Millisecond,
		MaxConcurrentRequests: pick(c.ReplicaMaxConcurrentRequests, DefaultReplicaMaxConcurrentRequests),
		MaxRequestWait:        time.Duration(pick(c.MaxRequestWaitTimeMs, DefaultMaxRequestWaitTimeMs)) * time.Millisecond,
		MaxBatchSize:          min(max(c.MaxBatchSize, 0), MaxBatchSizeLimit),
		MaxBatchDelay:         time.Duration(min(max(c.MaxBatchDelayMs, 0), MaxBatchDelayMsLimit)) * time.Millisecond,

		Liveness: LivenessProbe{
			Period:           time.Duration(pick(c.PeriodSeconds, DefaultPeriodSeconds)) * time.Second,
			InitialDelay:     time.Duration(pick(c.InitialDelaySeconds, DefaultInitialDelaySeconds)) * time.Second,
			Timeout:          time.Duration(pick(c.TimeoutSeconds, DefaultTimeoutSeconds)) * time.Second,
			SuccessThreshold: pick(c.SuccessThreshold, DefaultSuccessThreshold),
			FailureThreshold: pick(c.FailureThreshold, DefaultFailureThreshold),
		},

		Namespace:         c.Namespace,
		ComputeTargetName: c.ComputeTargetName,
		Description:       c.Description,
		Tags:              copyStringMap(c.Tags),
		Properties:        copyStringMap(c.Properties),
		CollectModelData:  c.CollectModelData,
		AppInsights:       c.EnableAppInsights,
		Blobfuse:          c.BlobfuseEnabled == nil || *c.BlobfuseEnabled,
	}
	if c.AutoscaleEnabled != nil {
		e.Autoscale = *c.AutoscaleEnabled
	} else {
		e.Autoscale = c.NumReplicas <= 0
	}
	if e.Autoscale {
		e.Replicas = e.MinReplicas
	} else {
		e.Replicas = max(c.NumReplicas, 1)
	}
	switch {
	case c.TokenAuthEnabled:
		e.Auth = AuthToken
	case c.AuthEnabled == nil || *c.AuthEnabled:
		e.Auth = AuthKey
	default:
		e.Auth = AuthNone
	}
	return e
}

func copyStringMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// invalid returns an errcode.InvalidArgument error in the SDK's wording.
func invalidConfig(format string, args ...any) error {
	return errcode.Errorf(errcode.InvalidArgument, "Invalid configuration, "+format+".", args...)
}
