package webservice

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/jsontype"
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
	return w
}

// The keys of each computeType.
var (
	dcAKSKeys = []string{"computeType", "autoScaler", "dataCollection", "authEnabled", "tokenAuthEnabled",
		"containerResourceRequirements", "gpuCores", "appInsightsEnabled", "scoringTimeoutMs",
		"maxConcurrentRequestsPerContainer", "maxQueueWaitMs", "numReplicas", "keys",
		"livenessProbeRequirements", "namespace", "computeTargetName"}
	dcEndpointKeys = []string{"versionName", "trafficPercentile"}
	dcLocalKeys    = []string{"computeType", "port"}
)

// decodeDeploymentFile decodes the structure of a deploymentconfig.json file,
// reporting JSON-level problems; the DeployConfig rules are not applied.
func decodeDeploymentFile(data []byte) (DeploymentConfigFile, []error) {
	var f DeploymentConfigFile
	d := &dcDecoder{}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark, as Windows editors write
	var top json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return f, []error{errcode.Errorf(errcode.InvalidArgument, "Invalid deployment config JSON: %v (at byte %d).", err, syn.Offset)}
		}
		return f, []error{errcode.Errorf(errcode.InvalidArgument, "Invalid deployment config JSON: %v.", err)}
	}
	m, ok := d.object(top, "")
	if !ok {
		return f, d.errs
	}

	// computeType first: it decides which keys belong.
	if raw, present := m["computeType"]; !present || jsontype.IsNull(raw) {
		d.fail("computeType is required: aks, aksendpoint or local")
	} else if s, ok := d.str(raw, "computeType"); ok {
		switch ct := ComputeType(strings.ToLower(s)); ct {
		case ComputeTypeAKS, ComputeTypeAKSEndpoint, ComputeTypeLocal:
			f.ComputeType = ct
		case "aci":
			d.fail("computeType %q (Azure Container Instances) is not supported; use aks, aksendpoint or local", s)
		default:
			d.fail("computeType %q must be aks, aksendpoint or local", s)
		}
	}

	var known []string
	switch f.ComputeType {
	case ComputeTypeAKS:
		known = dcAKSKeys
	case ComputeTypeAKSEndpoint:
		known = append(slices.Clip(dcAKSKeys), dcEndpointKeys...)
	case ComputeTypeLocal:
		known = dcLocalKeys
	default: // unknown: check every field any computeType has
		known = append(append(slices.Clip(dcAKSKeys), dcEndpointKeys...), "port")
	}
	d.unknownKeys(m, "", known, func(key string) string {
		switch {
		case slices.Contains(dcEndpointKeys, key):
			return "is only used with computeType aksendpoint"
		case key == "port":
			return "is only used with computeType local"
		case slices.Contains(dcAKSKeys, key):
			return "is not used with computeType local (only computeType and port are)"
		}
		return ""
	})

	if f.ComputeType == ComputeTypeLocal {
		if raw, ok := m["port"]; ok && !jsontype.IsNull(raw) {
			if p, ok := d.integer(raw, "port", "port", false); ok {
				if p < 0 || p > 65535 {
					d.fail("port %d must be between 0 and 65535 (0 picks a free port)", p)
				} else {
					f.Port = p
				}
			}
		}
		return f, d.errs
	}

	c := &f.DeployConfig
	if as, ok := d.child(m, "autoScaler", []string{"autoscaleEnabled", "minReplicas", "maxReplicas", "refreshPeriodInSeconds", "targetUtilization"}); ok {
		c.AutoscaleEnabled = d.optBool(as, "autoScaler", "autoscaleEnabled")
		c.AutoscaleMinReplicas = d.optInt(as, "autoScaler", "minReplicas", "autoscale_min_replicas", true)
		c.AutoscaleMaxReplicas = d.optInt(as, "autoScaler", "maxReplicas", "autoscale_max_replicas", true)
		c.AutoscaleRefreshSeconds = d.optInt(as, "autoScaler", "refreshPeriodInSeconds", "autoscale_refresh_seconds", true)
		c.AutoscaleTargetUtilization = d.optInt(as, "autoScaler", "targetUtilization", "autoscale_target_utilization", true)
	}
	if dc, ok := d.child(m, "dataCollection", []string{"storageEnabled"}); ok {
		if b := d.optBool(dc, "dataCollection", "storageEnabled"); b != nil {
			c.CollectModelData = *b
		}
	}
	c.AuthEnabled = d.optBool(m, "", "authEnabled")
	if b := d.optBool(m, "", "tokenAuthEnabled"); b != nil {
		c.TokenAuthEnabled = *b
	}
	if rr, ok := d.child(m, "containerResourceRequirements", []string{"cpu", "memoryInGB", "cpuLimit", "memoryInGBLimit"}); ok {
		const p = "containerResourceRequirements"
		c.CPUCores = d.optFloat(rr, p, "cpu", "cpu_cores")
		c.MemoryGB = d.optFloat(rr, p, "memoryInGB", "memory_gb")
		c.CPUCoresLimit = d.optFloat(rr, p, "cpuLimit", "cpu_cores_limit")
		c.MemoryGBLimit = d.optFloat(rr, p, "memoryInGBLimit", "memory_gb_limit")
	}
	c.GPUCores = d.optInt(m, "", "gpuCores", "gpu_cores", false)
	if b := d.optBool(m, "", "appInsightsEnabled"); b != nil {
		c.EnableAppInsights = *b
	}
	c.ScoringTimeoutMs = d.optInt(m, "", "scoringTimeoutMs", "scoring_timeout_ms", true)
	c.ReplicaMaxConcurrentRequests = d.optInt(m, "", "maxConcurrentRequestsPerContainer", "replica_max_concurrent_requests", true)
	c.MaxRequestWaitTimeMs = d.optInt(m, "", "maxQueueWaitMs", "max_request_wait_time", true)
	c.NumReplicas = d.optInt(m, "", "numReplicas", "num_replicas", true)
	if k, ok := d.child(m, "keys", []string{"primaryKey", "secondaryKey"}); ok {
		c.PrimaryKey = d.optStr(k, "keys", "primaryKey")
		c.SecondaryKey = d.optStr(k, "keys", "secondaryKey")
	}
	if lp, ok := d.child(m, "livenessProbeRequirements", []string{"periodSeconds", "initialDelaySeconds", "timeoutSeconds", "successThreshold", "failureThreshold"}); ok {
		const p = "livenessProbeRequirements"
		c.PeriodSeconds = d.optInt(lp, p, "periodSeconds", "period_seconds", true)
		c.InitialDelaySeconds = d.optInt(lp, p, "initialDelaySeconds", "initial_delay_seconds", true)
		c.TimeoutSeconds = d.optInt(lp, p, "timeoutSeconds", "timeout_seconds", true)
		c.SuccessThreshold = d.optInt(lp, p, "successThreshold", "success_threshold", true)
		c.FailureThreshold = d.optInt(lp, p, "failureThreshold", "failure_threshold", true)
	}
	c.Namespace = d.optStr(m, "", "namespace")
	c.ComputeTargetName = d.optStr(m, "", "computeTargetName")
	if f.ComputeType != ComputeTypeAKS {
		f.VersionName = d.optStr(m, "", "versionName")
		if raw, ok := m["trafficPercentile"]; ok && !jsontype.IsNull(raw) {
			f.TrafficPercentile, _ = d.number(raw, "trafficPercentile")
		}
	}
	return f, d.errs
}

// dcDecoder collects the problems of one file.
type dcDecoder struct{ errs []error }

func (d *dcDecoder) fail(format string, args ...any) {
	d.errs = append(d.errs, errcode.Errorf(errcode.InvalidArgument, "Invalid deployment config JSON, "+format+".", args...))
}

// jsonSimpleKey matches keys printed as .key in a path; others print as ["key"].
var jsonSimpleKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func jsonPath(parent, key string) string {
	if !jsonSimpleKey.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// show quotes a short form of raw for messages.
func jsonShow(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func (d *dcDecoder) object(raw json.RawMessage, path string) (map[string]json.RawMessage, bool) {
	if jsontype.Of(raw) != "an object" {
		if path == "" {
			d.fail("the file must hold a JSON object, not %s", jsontype.Of(raw))
		} else {
			d.fail("%s must be a JSON object, not %s %s", path, jsontype.Of(raw), jsonShow(raw))
		}
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		d.fail("%s: %v", jsonTop(path), err)
		return nil, false
	}
	return m, true
}

func jsonTop(path string) string {
	if path == "" {
		return "the top-level object"
	}
	return path
}

// child decodes the object m[key] and reports its unknown keys; ok is false
// when it is absent, null or not an object.
func (d *dcDecoder) child(m map[string]json.RawMessage, key string, known []string) (map[string]json.RawMessage, bool) {
	raw, present := m[key]
	if !present || jsontype.IsNull(raw) {
		return nil, false
	}
	c, ok := d.object(raw, key)
	if ok {
		d.unknownKeys(c, key, known, nil)
	}
	return c, ok
}

// unknownKeys reports the keys of m not in known, in sorted order; why
// explains a key that belongs to another computeType.
func (d *dcDecoder) unknownKeys(m map[string]json.RawMessage, path string, known []string, why func(string) string) {
	var bad []string
	for k := range m {
		if !slices.Contains(known, k) {
			bad = append(bad, k)
		}
	}
	slices.Sort(bad)
	for _, k := range bad {
		p := jsonPath(path, k)
		if why != nil {
			if reason := why(k); reason != "" {
				d.fail("field %s %s", p, reason)
				continue
			}
		}
		if i := slices.IndexFunc(known, func(s string) bool { return strings.EqualFold(s, k) }); i >= 0 {
			d.fail("unknown field %s (did you mean %s? field names are case-sensitive)", p, jsonPath(path, known[i]))
			continue
		}
		d.fail("unknown field %s", p)
	}
}

func (d *dcDecoder) str(raw json.RawMessage, path string) (string, bool) {
	var s string
	if jsontype.Of(raw) != "a string" || json.Unmarshal(raw, &s) != nil {
		d.fail("%s must be a string, not %s %s", path, jsontype.Of(raw), jsonShow(raw))
		return "", false
	}
	return s, true
}

func (d *dcDecoder) optStr(m map[string]json.RawMessage, parent, key string) string {
	raw, ok := m[key]
	if !ok || jsontype.IsNull(raw) {
		return ""
	}
	s, _ := d.str(raw, jsonPath(parent, key))
	return s
}

func (d *dcDecoder) optBool(m map[string]json.RawMessage, parent, key string) *bool {
	raw, ok := m[key]
	if !ok || jsontype.IsNull(raw) {
		return nil
	}
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return new(true)
	case "false":
		return new(false)
	}
	d.fail("%s must be true or false, not %s %s", jsonPath(parent, key), jsontype.Of(raw), jsonShow(raw))
	return nil
}

// number parses a JSON number.
func (d *dcDecoder) number(raw json.RawMessage, path string) (float64, bool) {
	if jsontype.Of(raw) != "a number" {
		d.fail("%s must be a number, not %s %s", path, jsontype.Of(raw), jsonShow(raw))
		return 0, false
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil || math.IsInf(v, 0) {
		d.fail("%s %s is out of range", path, jsonShow(raw))
		return 0, false
	}
	return v, true
}

// integer parses a JSON number that must be whole (1 and 1.0 are, 1.5 is
// not). With positive, an explicit 0 is reported as breaking the >0 rule of
// the SDK parameter azure.
func (d *dcDecoder) integer(raw json.RawMessage, path, azure string, positive bool) (int, bool) {
	text := string(bytes.TrimSpace(raw))
	if jsontype.Of(raw) != "a number" {
		d.fail("%s must be a whole number, not %s %s", path, jsontype.Of(raw), jsonShow(raw))
		return 0, false
	}
	v, err := strconv.ParseInt(text, 10, 0)
	if err != nil {
		f, ferr := strconv.ParseFloat(text, 64)
		switch {
		case ferr == nil && f != math.Trunc(f):
			d.fail("%s (%s) %s must be a whole number", path, azure, jsonShow(raw))
			return 0, false
		case ferr != nil || f > math.MaxInt32 || f < math.MinInt32:
			d.fail("%s (%s) %s is out of range", path, azure, jsonShow(raw))
			return 0, false
		}
		v = int64(f)
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		// The service stored these as 32-bit integers.
		d.fail("%s (%s) %s is out of range (at most %d)", path, azure, jsonShow(raw), math.MaxInt32)
		return 0, false
	}
	if positive && v == 0 {
		d.fail("%s (%s) 0 must be greater than zero (leave it out for the default)", path, azure)
		return 0, false
	}
	return int(v), true
}

func (d *dcDecoder) optInt(m map[string]json.RawMessage, parent, key, azure string, positive bool) int {
	raw, ok := m[key]
	if !ok || jsontype.IsNull(raw) {
		return 0
	}
	v, _ := d.integer(raw, jsonPath(parent, key), azure, positive)
	return v
}

// optFloat parses a number that, when given, must be greater than zero.
func (d *dcDecoder) optFloat(m map[string]json.RawMessage, parent, key, azure string) float64 {
	raw, ok := m[key]
	if !ok || jsontype.IsNull(raw) {
		return 0
	}
	path := jsonPath(parent, key)
	v, ok := d.number(raw, path)
	if ok && v == 0 {
		d.fail("%s (%s) 0 must be greater than zero (leave it out for the default)", path, azure)
	}
	return v
}
