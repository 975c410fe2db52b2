package webservice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/jsontype"
	"github.com/aksml/aksml/internal/strictjson"
)

// ComputeType is the computeType of a deploymentconfig.json file: where the
// deployment goes.
type ComputeType string

// Compute types aksml reads. The file spells them in any case; aksml writes
// them in lower case. (The SDK also reads "aci", which aksml does not
// support.)
const (
	// ComputeTypeAKS deploys a web service to a cluster (AksWebservice).
	ComputeTypeAKS ComputeType = "aks"
	// ComputeTypeAKSEndpoint deploys a version of an endpoint (AksEndpoint).
	ComputeTypeAKSEndpoint ComputeType = "aksendpoint"
	// ComputeTypeLocal runs the service on this machine (LocalWebservice).
	ComputeTypeLocal ComputeType = "local"
)

// DeploymentConfigFile is the content of a deploymentconfig.json file, the
// file `az ml model deploy --dc` reads, for any of its compute types.
type DeploymentConfigFile struct {
	// ComputeType says which of the fields below apply.
	ComputeType ComputeType
	// DeployConfig holds the fields of computeType aks and aksendpoint. The
	// file has no keys for Description, Tags, Properties and
	// BlobfuseEnabled (the CLI takes the first three as flags): they are
	// never decoded and never encoded.
	DeployConfig DeployConfig
	// VersionName and TrafficPercentile are the fields only computeType
	// aksendpoint has (versionName, trafficPercentile); package endpoint
	// validates them.
	VersionName       string
	TrafficPercentile float64
	// Port is the only field of computeType local (port); 0 picks a free
	// port.
	Port int
}

// DecodeDeploymentConfig decodes a deploymentconfig.json file of any
// computeType, as the CLI's deploy_config_dict_to_obj reads it:
//
//	{
//	  "computeType": "aks",                        // required; aks, aksendpoint or local, any case
//	  "autoScaler": {"autoscaleEnabled": true, "minReplicas": 1, "maxReplicas": 3,
//	                 "refreshPeriodInSeconds": 1, "targetUtilization": 70},
//	  "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1, "cpuLimit": 1, "memoryInGBLimit": 2},
//	  "gpuCores": 0,                               // top-level, a whole number
//	  "numReplicas": 2,
//	  "authEnabled": true, "tokenAuthEnabled": false,
//	  "keys": {"primaryKey": "...", "secondaryKey": "..."},
//	  "scoringTimeoutMs": 60000, "maxConcurrentRequestsPerContainer": 1, "maxQueueWaitMs": 500,
//	  "livenessProbeRequirements": {"periodSeconds": 10, "initialDelaySeconds": 310,
//	                                "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
//	  "dataCollection": {"storageEnabled": false}, "appInsightsEnabled": false,
//	  "namespace": "...", "computeTargetName": "...",
//	  "aksml": {"maxBatchSize": 16, "maxBatchDelayMs": 5}, // aksml's extension: request batching
//	  "versionName": "...", "trafficPercentile": 10, // aksendpoint only
//	  "port": 32267                                // local only (and nothing else)
//	}
//
// A JSON null is the same as an absent field. The error, when not nil,
// joins one errcode.InvalidArgument error per problem, all at once: input
// that is not a JSON object, a missing or unknown computeType, an unknown
// field or one that does not belong to the computeType (named with its JSON
// path, such as autoScaler.minReplica), a value of the wrong JSON type, a
// fraction where a whole number belongs, an explicit 0 where the value must
// be greater than zero, a port outside 0–65535, and, for aks and
// aksendpoint (or a missing computeType), every rule of
// DeployConfig.Validate. For aksendpoint, the
// version fields are only type-checked here: decode the same bytes with
// endpoint.DecodeVersionConfig to have them validated. On error the result
// holds whatever could be decoded.
func DecodeDeploymentConfig(data []byte) (DeploymentConfigFile, error) {
	f, errs := decodeDeploymentFile(data)
	if f.ComputeType != ComputeTypeLocal {
		errs = append(errs, f.DeployConfig.problems()...)
	}
	return f, errors.Join(errs...)
}

// DecodeDeployConfig decodes a deploymentconfig.json file of computeType
// aks into a DeployConfig and validates it, reporting every problem as
// DecodeDeploymentConfig does. A file of another computeType is an error.
func DecodeDeployConfig(data []byte) (DeployConfig, error) {
	f, err := DecodeDeploymentConfig(data)
	if f.ComputeType != "" && f.ComputeType != ComputeTypeAKS {
		err = errors.Join(err, errcode.Errorf(errcode.InvalidArgument,
			"Invalid deployment config JSON, computeType %s is not aks: a web service deploy config needs computeType aks (decode aksendpoint files with endpoint.DecodeVersionConfig)", f.ComputeType))
	}
	return f.DeployConfig, err
}

// Encode returns f as deploymentconfig.json, indented, with only the fields
// of its computeType and without unset (zero) fields. It does not validate
// f; it fails (errcode.InvalidArgument) only for an unknown computeType or a
// NaN or infinite number, which JSON cannot carry.
func (f DeploymentConfigFile) Encode() ([]byte, error) {
	var w wireFile
	switch f.ComputeType {
	case ComputeTypeAKS, ComputeTypeAKSEndpoint:
		w = toWire(f.DeployConfig)
		if f.ComputeType == ComputeTypeAKSEndpoint {
			w.VersionName = f.VersionName
			w.TrafficPercentile = f.TrafficPercentile
		}
	case ComputeTypeLocal:
		w.Port = f.Port
	default:
		return nil, errcode.Errorf(errcode.InvalidArgument, "Invalid deployment config, computeType %q must be aks, aksendpoint or local", f.ComputeType)
	}
	w.ComputeType = string(f.ComputeType)
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "Invalid deployment config: cannot encode as JSON: %w", err)
	}
	return append(b, '\n'), nil
}

// EncodeDeployConfig returns c as a deploymentconfig.json file of
// computeType aks (see DeploymentConfigFile.Encode). Description, Tags,
// Properties and BlobfuseEnabled have no key in the file and are left out.
func EncodeDeployConfig(c DeployConfig) ([]byte, error) {
	return DeploymentConfigFile{ComputeType: ComputeTypeAKS, DeployConfig: c}.Encode()
}

// The encoded form. Zero fields are unset, so omitempty leaves them out.
type wireFile struct {
	ComputeType                       string          `json:"computeType"`
	VersionName                       string          `json:"versionName,omitempty"`
	TrafficPercentile                 float64         `json:"trafficPercentile,omitempty"`
	AutoScaler                        *wireAutoScaler `json:"autoScaler,omitempty"`
	NumReplicas                       int             `json:"numReplicas,omitempty"`
	ContainerResourceRequirements     *wireResources  `json:"containerResourceRequirements,omitempty"`
	GPUCores                          int             `json:"gpuCores,omitempty"`
	AuthEnabled                       *bool           `json:"authEnabled,omitempty"`
	TokenAuthEnabled                  bool            `json:"tokenAuthEnabled,omitempty"`
	Keys                              *wireKeys       `json:"keys,omitempty"`
	ScoringTimeoutMs                  int             `json:"scoringTimeoutMs,omitempty"`
	MaxConcurrentRequestsPerContainer int             `json:"maxConcurrentRequestsPerContainer,omitempty"`
	MaxQueueWaitMs                    int             `json:"maxQueueWaitMs,omitempty"`
	LivenessProbeRequirements         *wireLiveness   `json:"livenessProbeRequirements,omitempty"`
	DataCollection                    *wireDataColl   `json:"dataCollection,omitempty"`
	AppInsightsEnabled                bool            `json:"appInsightsEnabled,omitempty"`
	Namespace                         string          `json:"namespace,omitempty"`
	ComputeTargetName                 string          `json:"computeTargetName,omitempty"`
	Aksml                             *wireAksml      `json:"aksml,omitempty"`
	Port                              int             `json:"port,omitempty"`
}

type wireAutoScaler struct {
	AutoscaleEnabled       *bool `json:"autoscaleEnabled,omitempty"`
	MinReplicas            int   `json:"minReplicas,omitempty"`
	MaxReplicas            int   `json:"maxReplicas,omitempty"`
	RefreshPeriodInSeconds int   `json:"refreshPeriodInSeconds,omitempty"`
	TargetUtilization      int   `json:"targetUtilization,omitempty"`
}

type wireResources struct {
	CPU             float64 `json:"cpu,omitempty"`
	MemoryInGB      float64 `json:"memoryInGB,omitempty"`
	CPULimit        float64 `json:"cpuLimit,omitempty"`
	MemoryInGBLimit float64 `json:"memoryInGBLimit,omitempty"`
}

type wireKeys struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

type wireLiveness struct {
	PeriodSeconds       int `json:"periodSeconds,omitempty"`
	InitialDelaySeconds int `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds      int `json:"timeoutSeconds,omitempty"`
	SuccessThreshold    int `json:"successThreshold,omitempty"`
	FailureThreshold    int `json:"failureThreshold,omitempty"`
}

// wireAksml holds aksml's extensions, which Azure ML v1 does not have.
type wireAksml struct {
	MaxBatchSize    int `json:"maxBatchSize,omitempty"`
	MaxBatchDelayMs int `json:"maxBatchDelayMs,omitempty"`
}

type wireDataColl struct {
	StorageEnabled bool `json:"storageEnabled,omitempty"`
}

func toWire(c DeployConfig) wireFile {
	w := wireFile{
		NumReplicas:                       c.NumReplicas,
		GPUCores:                          c.GPUCores,
		AuthEnabled:                       c.AuthEnabled,
		TokenAuthEnabled:                  c.TokenAuthEnabled,
		ScoringTimeoutMs:                  c.ScoringTimeoutMs,
		MaxConcurrentRequestsPerContainer: c.ReplicaMaxConcurrentRequests,
		MaxQueueWaitMs:                    c.MaxRequestWaitTimeMs,
		AppInsightsEnabled:                c.EnableAppInsights,
		Namespace:                         c.Namespace,
		ComputeTargetName:                 c.ComputeTargetName,
	}
	if a := (wireAutoScaler{c.AutoscaleEnabled, c.AutoscaleMinReplicas, c.AutoscaleMaxReplicas,
		c.AutoscaleRefreshSeconds, c.AutoscaleTargetUtilization}); a != (wireAutoScaler{}) {
		w.AutoScaler = &a
	}
	if r := (wireResources{c.CPUCores, c.MemoryGB, c.CPUCoresLimit, c.MemoryGBLimit}); r != (wireResources{}) {
		w.ContainerResourceRequirements = &r
	}
	if k := (wireKeys{c.PrimaryKey, c.SecondaryKey}); k != (wireKeys{}) {
		w.Keys = &k
	}
	if l := (wireLiveness{c.PeriodSeconds, c.InitialDelaySeconds, c.TimeoutSeconds,
		c.SuccessThreshold, c.FailureThreshold}); l != (wireLiveness{}) {
		w.LivenessProbeRequirements = &l
	}
	if c.CollectModelData {
		w.DataCollection = &wireDataColl{StorageEnabled: true}
	}
	if a := (wireAksml{c.MaxBatchSize, c.MaxBatchDelayMs}); a != (wireAksml{}) {
		w.Aksml = &a
	}
	return w
}

// The keys of each computeType.
var (
	dcAKSKeys = []string{"computeType", "autoScaler", "dataCollection", "authEnabled", "tokenAuthEnabled",
		"containerResourceRequirements", "gpuCores", "appInsightsEnabled", "scoringTimeoutMs",
		"maxConcurrentRequestsPerContainer", "maxQueueWaitMs", "numReplicas", "keys",
		"livenessProbeRequirements", "namespace", "computeTargetName", "aksml"}
	dcEndpointKeys = []string{"versionName", "trafficPercentile"}
	dcLocalKeys    = []string{"computeType", "port"}
)

// decodeDeploymentFile decodes the structure of a deploymentconfig.json file,
// reporting JSON-level problems; the DeployConfig rules are not applied.
func decodeDeploymentFile(data []byte) (DeploymentConfigFile, []error) {
	var f DeploymentConfigFile
	d := &strictjson.Decoder{Report: dcProblem, QuoteKeys: true}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark, as Windows editors write
	var top json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return f, []error{errcode.Errorf(errcode.InvalidArgument, "Invalid deployment config JSON: %v (at byte %d).", err, syn.Offset)}
		}
		return f, []error{errcode.Errorf(errcode.InvalidArgument, "Invalid deployment config JSON: %v.", err)}
	}
	m := d.Object("", top)
	if m == nil {
		if jsontype.IsNull(top) {
			d.Fail("", "the file must hold a JSON object, not null")
		}
		return f, d.Errs()
	}

	// computeType first: it decides which keys belong.
	if _, present := m.Take("computeType"); !present {
		m.Fail("computeType", "computeType is required: aks, aksendpoint or local")
	} else if s, ok := m.String("computeType"); ok {
		switch ct := ComputeType(strings.ToLower(s)); ct {
		case ComputeTypeAKS, ComputeTypeAKSEndpoint, ComputeTypeLocal:
			f.ComputeType = ct
		case "aci":
			m.Fail("computeType", "computeType %q (Azure Container Instances) is not supported; use aks, aksendpoint or local", s)
		default:
			m.Fail("computeType", "computeType %q must be aks, aksendpoint or local", s)
		}
	}

	switch f.ComputeType {
	case ComputeTypeAKS:
		m.Known(dcAKSKeys...)
	case ComputeTypeAKSEndpoint:
		m.Known(dcAKSKeys...)
		m.Known(dcEndpointKeys...)
	case ComputeTypeLocal:
		m.Known(dcLocalKeys...)
	default: // unknown: check every field any computeType has
		m.Known(dcAKSKeys...)
		m.Known(dcEndpointKeys...)
		m.Known("port")
	}
	m.Done()

	if f.ComputeType == ComputeTypeLocal {
		if p, ok := dcInteger(m, "port", "port", false); ok {
			if p < 0 || p > 65535 {
				m.Fail("port", "port %d must be between 0 and 65535 (0 picks a free port)", p)
			} else {
				f.Port = p
			}
		}
		return f, d.Errs()
	}

	c := &f.DeployConfig
	if as := dcChild(m, "autoScaler", "autoscaleEnabled", "minReplicas", "maxReplicas", "refreshPeriodInSeconds", "targetUtilization"); as != nil {
		c.AutoscaleEnabled = dcOptBool(as, "autoscaleEnabled")
		c.AutoscaleMinReplicas, _ = dcInteger(as, "minReplicas", "autoscale_min_replicas", true)
		c.AutoscaleMaxReplicas, _ = dcInteger(as, "maxReplicas", "autoscale_max_replicas", true)
		c.AutoscaleRefreshSeconds, _ = dcInteger(as, "refreshPeriodInSeconds", "autoscale_refresh_seconds", true)
		c.AutoscaleTargetUtilization, _ = dcInteger(as, "targetUtilization", "autoscale_target_utilization", true)
	}
	if dc := dcChild(m, "dataCollection", "storageEnabled"); dc != nil {
		c.CollectModelData, _ = dc.Bool("storageEnabled")
	}
	c.AuthEnabled = dcOptBool(m, "authEnabled")
	c.TokenAuthEnabled, _ = m.Bool("tokenAuthEnabled")
	if rr := dcChild(m, "containerResourceRequirements", "cpu", "memoryInGB", "cpuLimit", "memoryInGBLimit"); rr != nil {
		c.CPUCores = dcPositive(rr, "cpu", "cpu_cores")
		c.MemoryGB = dcPositive(rr, "memoryInGB", "memory_gb")
		c.CPUCoresLimit = dcPositive(rr, "cpuLimit", "cpu_cores_limit")
		c.MemoryGBLimit = dcPositive(rr, "memoryInGBLimit", "memory_gb_limit")
	}
	c.GPUCores, _ = dcInteger(m, "gpuCores", "gpu_cores", false)
	c.EnableAppInsights, _ = m.Bool("appInsightsEnabled")
	c.ScoringTimeoutMs, _ = dcInteger(m, "scoringTimeoutMs", "scoring_timeout_ms", true)
	c.ReplicaMaxConcurrentRequests, _ = dcInteger(m, "maxConcurrentRequestsPerContainer", "replica_max_concurrent_requests", true)
	c.MaxRequestWaitTimeMs, _ = dcInteger(m, "maxQueueWaitMs", "max_request_wait_time", true)
	c.NumReplicas, _ = dcInteger(m, "numReplicas", "num_replicas", true)
	if k := dcChild(m, "keys", "primaryKey", "secondaryKey"); k != nil {
		c.PrimaryKey, _ = k.String("primaryKey")
		c.SecondaryKey, _ = k.String("secondaryKey")
	}
	if lp := dcChild(m, "livenessProbeRequirements", "periodSeconds", "initialDelaySeconds", "timeoutSeconds", "successThreshold", "failureThreshold"); lp != nil {
		c.PeriodSeconds, _ = dcInteger(lp, "periodSeconds", "period_seconds", true)
		c.InitialDelaySeconds, _ = dcInteger(lp, "initialDelaySeconds", "initial_delay_seconds", true)
		c.TimeoutSeconds, _ = dcInteger(lp, "timeoutSeconds", "timeout_seconds", true)
		c.SuccessThreshold, _ = dcInteger(lp, "successThreshold", "success_threshold", true)
		c.FailureThreshold, _ = dcInteger(lp, "failureThreshold", "failure_threshold", true)
	}
	if ax := dcChild(m, "aksml", "maxBatchSize", "maxBatchDelayMs"); ax != nil {
		c.MaxBatchSize, _ = dcInteger(ax, "maxBatchSize", "max_batch_size", true)
		c.MaxBatchDelayMs, _ = dcInteger(ax, "maxBatchDelayMs", "max_batch_delay_ms", false)
	}
	c.Namespace, _ = m.String("namespace")
	c.ComputeTargetName, _ = m.String("computeTargetName")
	if f.ComputeType != ComputeTypeAKS {
		f.VersionName, _ = m.String("versionName")
		f.TrafficPercentile, _ = dcNumber(m, "trafficPercentile")
	}
	return f, d.Errs()
}

// dcProblem words a problem of a deploymentconfig.json file as Azure does.
func dcProblem(p strictjson.Problem) error {
	var msg string
	switch p.What {
	case strictjson.WrongType:
		want := p.Want
		if want == "an object" {
			if p.Path == "" {
				msg = "the file must hold a JSON object, not " + p.Got()
				break
			}
			want = "a JSON object"
		}
		msg = fmt.Sprintf("%s must be %s, not %s %s", p.Path, want, p.Got(), p.Value())
	case strictjson.Malformed:
		where := p.Path
		if where == "" {
			where = "the top-level object"
		}
		msg = fmt.Sprintf("%s: %v", where, p.Err)
	case strictjson.UnknownField:
		switch why := dcElsewhere(p); {
		case why != "":
			msg = fmt.Sprintf("field %s %s", p.Path, why)
		case p.Suggest != "":
			msg = fmt.Sprintf("unknown field %s (did you mean %s? field names are case-sensitive)", p.Path, p.Suggest)
		default:
			msg = "unknown field " + p.Path
		}
	default:
		msg = p.Msg
	}
	return errcode.New(errcode.InvalidArgument, "Invalid deployment config JSON, "+msg+".")
}

// dcElsewhere explains a top-level field that belongs to another
// computeType; "" for any other field.
func dcElsewhere(p strictjson.Problem) string {
	switch {
	case p.Parent != "":
	case slices.Contains(dcEndpointKeys, p.Key):
		return "is only used with computeType aksendpoint"
	case p.Key == "port":
		return "is only used with computeType local"
	case slices.Contains(dcAKSKeys, p.Key):
		return "is not used with computeType local (only computeType and port are)"
	}
	return ""
}

// dcChild decodes the object field key of o and reports its fields other
// than known; nil when it is absent, null or not an object.
func dcChild(o *strictjson.Object, key string, known ...string) *strictjson.Object {
	c := o.Object(key)
	if c != nil {
		c.Known(known...)
		c.Done()
	}
	return c
}

func dcOptBool(o *strictjson.Object, key string) *bool {
	if v, ok := o.Bool(key); ok {
		return &v
	}
	return nil
}

// dcNumber parses the number field key; ok is false when it is absent,
// null or broken (a problem).
func dcNumber(o *strictjson.Object, key string) (float64, bool) {
	raw, ok := o.Take(key)
	if !ok {
		return 0, false
	}
	if jsontype.Of(raw) != "a number" {
		o.WrongType(key, "a number", raw)
		return 0, false
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil || math.IsInf(v, 0) {
		o.Fail(key, "%s %s is out of range", o.Path(key), strictjson.Show(raw))
		return 0, false
	}
	return v, true
}

// dcInteger parses the number field key that must be whole (1 and 1.0 are,
// 1.5 is not); ok is false when it is absent, null or broken (a problem).
// With positive, an explicit 0 is reported as breaking the >0 rule of the
// SDK parameter azure.
func dcInteger(o *strictjson.Object, key, azure string, positive bool) (int, bool) {
	raw, ok := o.Take(key)
	if !ok {
		return 0, false
	}
	path, show := o.Path(key), strictjson.Show(raw)
	text := string(bytes.TrimSpace(raw))
	if jsontype.Of(raw) != "a number" {
		o.WrongType(key, "a whole number", raw)
		return 0, false
	}
	v, err := strconv.ParseInt(text, 10, 0)
	if err != nil {
		f, ferr := strconv.ParseFloat(text, 64)
		switch {
		case ferr == nil && f != math.Trunc(f):
			o.Fail(key, "%s (%s) %s must be a whole number", path, azure, show)
			return 0, false
		case ferr != nil || f > math.MaxInt32 || f < math.MinInt32:
			o.Fail(key, "%s (%s) %s is out of range", path, azure, show)
			return 0, false
		}
		v = int64(f)
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		// The service stored these as 32-bit integers.
		o.Fail(key, "%s (%s) %s is out of range (at most %d)", path, azure, show, math.MaxInt32)
		return 0, false
	}
	if positive && v == 0 {
		o.Fail(key, "%s (%s) 0 must be greater than zero (leave it out for the default)", path, azure)
		return 0, false
	}
	return int(v), true
}

// dcPositive parses a number field that, when given, must be greater than
// zero.
func dcPositive(o *strictjson.Object, key, azure string) float64 {
	v, ok := dcNumber(o, key)
	if ok && v == 0 {
		o.Fail(key, "%s (%s) 0 must be greater than zero (leave it out for the default)", o.Path(key), azure)
	}
	return v
}
