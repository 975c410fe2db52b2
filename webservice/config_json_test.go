package webservice

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/errcodetest"
	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeDeploymentConfigFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want DeploymentConfigFile
	}{
		{"deploymentconfig-docs.json", DeploymentConfigFile{ComputeType: ComputeTypeAKS, DeployConfig: DeployConfig{
			AutoscaleEnabled: new(true), AutoscaleMinReplicas: 1, AutoscaleMaxReplicas: 3, AutoscaleRefreshSeconds: 1, AutoscaleTargetUtilization: 70,
			CollectModelData: true, AuthEnabled: new(true), CPUCores: 0.5, MemoryGB: 1,
		}}},
		{"deploymentconfig-full.json", DeploymentConfigFile{ComputeType: ComputeTypeAKS, DeployConfig: DeployConfig{
			AutoscaleEnabled: new(false), NumReplicas: 2, CPUCores: 1, MemoryGB: 2.5, CPUCoresLimit: 2, MemoryGBLimit: 4, GPUCores: 1,
			AuthEnabled: new(false), TokenAuthEnabled: true, PrimaryKey: "primary-key-123", SecondaryKey: "secondary-key-456",
			ScoringTimeoutMs: 120000, ReplicaMaxConcurrentRequests: 2, MaxRequestWaitTimeMs: 1000,
			PeriodSeconds: 5, InitialDelaySeconds: 30, TimeoutSeconds: 2, SuccessThreshold: 1, FailureThreshold: 5,
			EnableAppInsights: true, Namespace: "ml-prod", ComputeTargetName: "aks-gpu",
		}}},
		{"deploymentconfig-aksendpoint.json", DeploymentConfigFile{ComputeType: ComputeTypeAKSEndpoint, VersionName: "version-b", TrafficPercentile: 20,
			DeployConfig: DeployConfig{AutoscaleEnabled: new(true), AutoscaleMaxReplicas: 4, CPUCores: 0.2, MemoryGB: 0.5, TokenAuthEnabled: true, AuthEnabled: new(false)}}},
		{"deploymentconfig-local.json", DeploymentConfigFile{ComputeType: ComputeTypeLocal, Port: 32267}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data := readTestdata(t, tt.file)
			got, err := DecodeDeploymentConfig(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("decode mismatch (-want +got):\n%s", diff)
			}
			// Round trip: encode, decode again, same value.
			enc, err := got.Encode()
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeDeploymentConfig(enc)
			if err != nil {
				t.Fatalf("decoding the encoded file: %v\n%s", err, enc)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("round trip mismatch (-first +second):\n%s\n%s", diff, enc)
			}
			// The encoded file holds the same JSON values as the source,
			// minus fields set to their zero value.
			var src, out map[string]any
			if err := json.Unmarshal(data, &src); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(enc, &out); err != nil {
				t.Fatal(err)
			}
			src["computeType"] = strings.ToLower(src["computeType"].(string))
			pruneFalse(src)
			if diff := cmp.Diff(src, out); diff != "" {
				t.Errorf("encoded JSON differs from the source (-src +encoded):\n%s", diff)
			}
		})
	}
}

// pruneFalse removes false booleans and objects left empty: Encode leaves
// unset fields out, and false is the zero value of a plain flag.
func pruneFalse(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case bool:
			if !x && k != "autoscaleEnabled" && k != "authEnabled" {
				delete(m, k)
			}
		case map[string]any:
			pruneFalse(x)
			if len(x) == 0 {
				delete(m, k)
			}
		}
	}
}

func TestEncodeDeployConfigExact(t *testing.T) {
	t.Parallel()
	c := DeployConfig{
		AutoscaleEnabled: new(false), NumReplicas: 3, CPUCores: 0.5, MemoryGB: 1, GPUCores: 1,
		TokenAuthEnabled: true, AuthEnabled: new(false), PeriodSeconds: 20, CollectModelData: true,
		Tags: map[string]string{"dropped": "no key in the file"}, Description: "dropped too", BlobfuseEnabled: new(false),
	}
	got, err := EncodeDeployConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "computeType": "aks",
  "autoScaler": {
    "autoscaleEnabled": false
  },
  "numReplicas": 3,
  "containerResourceRequirements": {
    "cpu": 0.5,
    "memoryInGB": 1
  },
  "gpuCores": 1,
  "authEnabled": false,
  "tokenAuthEnabled": true,
  "livenessProbeRequirements": {
    "periodSeconds": 20
  },
  "dataCollection": {
    "storageEnabled": true
  }
}
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("EncodeDeployConfig mismatch (-want +got):\n%s", diff)
	}
	back, err := DecodeDeployConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	c.Tags, c.Description, c.BlobfuseEnabled = nil, "", nil
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]DeploymentConfigFile{
		"no computeType":      {},
		"unknown computeType": {ComputeType: "aci"},
		"NaN":                 {ComputeType: ComputeTypeAKS, DeployConfig: DeployConfig{CPUCores: math.NaN()}},
		"Inf":                 {ComputeType: ComputeTypeAKSEndpoint, TrafficPercentile: math.Inf(1)},
	} {
		if _, err := f.Encode(); !errors.Is(err, errcode.InvalidArgument) {
			t.Errorf("%s: Encode err = %v, want InvalidArgument", name, err)
		}
	}
}

// TestDecodeDeploymentConfigErrors has one row per problem the decoder
// reports: each names the JSON path and, for values, the SDK parameter.
func TestDecodeDeploymentConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"not JSON", `{"computeType": "aks",}`, []string{"Invalid deployment config JSON: invalid character '}'"}},
		{"empty input", ``, []string{"Invalid deployment config JSON: unexpected end of JSON input"}},
		{"trailing data", `{"computeType":"aks"} {}`, []string{"invalid character '{' after top-level value"}},
		{"not an object", `["aks"]`, []string{"the file must hold a JSON object, not an array"}},
		{"computeType required", `{"numReplicas": 1}`, []string{"computeType is required: aks, aksendpoint or local"}},
		{"computeType null is missing", `{"computeType": null}`, []string{"computeType is required"}},
		{"computeType must be a string", `{"computeType": 1}`, []string{"computeType must be a string, not a number 1"}},
		{"computeType must be known", `{"computeType": "kubernetes"}`, []string{`computeType "kubernetes" must be aks, aksendpoint or local`}},
		{"computeType aci unsupported", `{"computeType": "ACI"}`, []string{`computeType "ACI" (Azure Container Instances) is not supported`}},
		{"unknown top-level field", `{"computeType": "aks", "replicas": 2}`, []string{"unknown field replicas"}},
		{"unknown nested field with its path", `{"computeType": "aks", "autoScaler": {"autoscaleEnabled": true, "minReplica": 2}}`, []string{"unknown field autoScaler.minReplica"}},
		{"field names are case-sensitive", `{"computeType": "aks", "autoscaler": {}}`, []string{"unknown field autoscaler (did you mean autoScaler? field names are case-sensitive)"}},
		{"odd key quoted in the path", `{"computeType": "aks", "keys": {"primary key": "x"}}`, []string{`unknown field keys["primary key"]`}},
		{"gpuCores is top-level, not in containerResourceRequirements", `{"computeType": "aks", "containerResourceRequirements": {"gpu": 1}}`, []string{"unknown field containerResourceRequirements.gpu"}},
		{"no key for blobfuse", `{"computeType": "aks", "blobfuseEnabled": false}`, []string{"unknown field blobfuseEnabled"}},
		{"port only for local", `{"computeType": "aks", "port": 80}`, []string{"field port is only used with computeType local"}},
		{"versionName only for aksendpoint", `{"computeType": "aks", "versionName": "v2", "trafficPercentile": 5}`, []string{"field trafficPercentile is only used with computeType aksendpoint", "field versionName is only used"}},
		{"local has only port", `{"computeType": "local", "port": 1, "numReplicas": 2, "keys": {}}`, []string{"field keys is not used with computeType local", "field numReplicas is not used with computeType local"}},
		{"port range", `{"computeType": "local", "port": 65536}`, []string{"port 65536 must be between 0 and 65535"}},
		{"port type", `{"computeType": "local", "port": "80"}`, []string{`port must be a whole number, not a string "80"`}},
		{"object expected", `{"computeType": "aks", "autoScaler": true}`, []string{"autoScaler must be a JSON object, not a boolean true"}},
		{"boolean expected", `{"computeType": "aks", "authEnabled": "false"}`, []string{`authEnabled must be true or false, not a string "false"`}},
		{"boolean expected, nested", `{"computeType": "aks", "dataCollection": {"storageEnabled": 1}}`, []string{"dataCollection.storageEnabled must be true or false, not a number 1"}},
		{"number expected", `{"computeType": "aks", "containerResourceRequirements": {"cpu": "0.5"}}`, []string{`containerResourceRequirements.cpu must be a number, not a string "0.5"`}},
		{"whole number expected", `{"computeType": "aks", "numReplicas": 1.5}`, []string{"numReplicas (num_replicas) 1.5 must be a whole number"}},
		{"gpuCores whole numbers only", `{"computeType": "aks", "gpuCores": 0.5}`, []string{"gpuCores (gpu_cores) 0.5 must be a whole number"}},
		{"integer out of range", `{"computeType": "aks", "numReplicas": 3000000000}`, []string{"numReplicas (num_replicas) 3000000000 is out of range (at most 2147483647)"}},
		{"huge integer", `{"computeType": "aks", "maxQueueWaitMs": 1e300}`, []string{"maxQueueWaitMs (max_request_wait_time) 1e300 is out of range"}},
		{"number out of range", `{"computeType": "aks", "containerResourceRequirements": {"memoryInGB": 1e999}}`, []string{"containerResourceRequirements.memoryInGB 1e999 is out of range"}},
		{"string expected", `{"computeType": "aks", "keys": {"primaryKey": 123}}`, []string{"keys.primaryKey must be a string, not a number 123"}},
		{"trafficPercentile type", `{"computeType": "aksendpoint", "trafficPercentile": "10%"}`, []string{`trafficPercentile must be a number, not a string "10%"`}},
		{"DeployConfig rules apply", `{"computeType": "aks", "autoScaler": {"minReplicas": 2}, "scoringTimeoutMs": 600000}`,
			[]string{"scoring_timeout_ms 600000 is above the 300000 ms", "autoscale_min_replicas 2 provided without enabling autoscaling"}},
		{"DeployConfig rules apply to aksendpoint", `{"computeType": "aksendpoint", "numReplicas": -1}`, []string{"num_replicas -1 must be greater than zero"}},
		{"every problem at once, in a stable order", `{"computeType": "aks", "zeta": 1, "alpha": 2, "numReplicas": 0, "autoScaler": {"autoscaleEnabled": "yes"}, "namespace": "UPPER"}`,
			[]string{"unknown field alpha", "unknown field zeta", `autoScaler.autoscaleEnabled must be true or false, not a string "yes"`,
				"numReplicas (num_replicas) 0 must be greater than zero", `namespace "UPPER" must be a valid Kubernetes namespace`}},
	}
	// An explicit 0 where the SDK requires a value greater than zero.
	for _, f := range []struct{ path, azure string }{
		{"autoScaler.minReplicas", "autoscale_min_replicas"},
		{"autoScaler.maxReplicas", "autoscale_max_replicas"},
		{"autoScaler.refreshPeriodInSeconds", "autoscale_refresh_seconds"},
		{"autoScaler.targetUtilization", "autoscale_target_utilization"},
		{"containerResourceRequirements.cpu", "cpu_cores"},
		{"containerResourceRequirements.memoryInGB", "memory_gb"},
		{"containerResourceRequirements.cpuLimit", "cpu_cores_limit"},
		{"containerResourceRequirements.memoryInGBLimit", "memory_gb_limit"},
		{"scoringTimeoutMs", "scoring_timeout_ms"},
		{"maxConcurrentRequestsPerContainer", "replica_max_concurrent_requests"},
		{"maxQueueWaitMs", "max_request_wait_time"},
		{"numReplicas", "num_replicas"},
		{"livenessProbeRequirements.periodSeconds", "period_seconds"},
		{"livenessProbeRequirements.initialDelaySeconds", "initial_delay_seconds"},
		{"livenessProbeRequirements.timeoutSeconds", "timeout_seconds"},
		{"livenessProbeRequirements.successThreshold", "success_threshold"},
		{"livenessProbeRequirements.failureThreshold", "failure_threshold"},
	} {
		obj := `"` + f.path + `": 0`
		if parent, key, nested := strings.Cut(f.path, "."); nested {
			obj = `"` + parent + `": {"` + key + `": 0.0}`
		}
		tests = append(tests, struct {
			name string
			in   string
			want []string
		}{"explicit 0 is reported: " + f.path, `{"computeType": "aks", "autoScaler": {"autoscaleEnabled": true}, ` + obj + `}`,
			[]string{f.path + " (" + f.azure + ") 0 must be greater than zero (leave it out for the default)"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeDeploymentConfig([]byte(tt.in))
			errcodetest.CheckInvalid(t, err, tt.want, true)
		})
	}
}

func TestDecodeDeploymentConfigAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want DeploymentConfigFile
	}{
		{"computeType in any case", `{"computeType": "AksEndpoint"}`, DeploymentConfigFile{ComputeType: ComputeTypeAKSEndpoint}},
		{"null is absent", `{"computeType": "aks", "autoScaler": null, "numReplicas": null, "keys": {"primaryKey": null}, "authEnabled": null}`, DeploymentConfigFile{ComputeType: ComputeTypeAKS}},
		{"explicit gpuCores 0 and trafficPercentile 0", `{"computeType": "aksendpoint", "gpuCores": 0, "trafficPercentile": 0}`, DeploymentConfigFile{ComputeType: ComputeTypeAKSEndpoint}},
		{"whole numbers written as fractions or exponents", `{"computeType": "aks", "numReplicas": 2.0, "scoringTimeoutMs": 1e4}`,
			DeploymentConfigFile{ComputeType: ComputeTypeAKS, DeployConfig: DeployConfig{NumReplicas: 2, ScoringTimeoutMs: 10000}}},
		{"byte order mark", "\xef\xbb\xbf{\"computeType\": \"local\"}", DeploymentConfigFile{ComputeType: ComputeTypeLocal}},
		{"explicit false flags", `{"computeType": "aks", "tokenAuthEnabled": false, "appInsightsEnabled": false, "dataCollection": {"storageEnabled": false}}`, DeploymentConfigFile{ComputeType: ComputeTypeAKS}},
		{"local port 0 picks a port", `{"computeType": "local", "port": 0}`, DeploymentConfigFile{ComputeType: ComputeTypeLocal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeDeploymentConfig([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeDeployConfigComputeType(t *testing.T) {
	t.Parallel()
	if _, err := DecodeDeployConfig(readTestdata(t, "deploymentconfig-docs.json")); err != nil {
		t.Errorf("aks file: %v", err)
	}
	for _, file := range []string{"deploymentconfig-aksendpoint.json", "deploymentconfig-local.json"} {
		_, err := DecodeDeployConfig(readTestdata(t, file))
		errcodetest.CheckInvalid(t, err, []string{"is not aks: a web service deploy config needs computeType aks"}, true)
	}
}

// FuzzDecodeDeploymentConfig feeds arbitrary bytes to the decoders: they
// never panic, every error is InvalidArgument, and whatever decodes
// re-encodes to a file that decodes to the same value.
func FuzzDecodeDeploymentConfig(f *testing.F) {
	for _, file := range []string{"deploymentconfig-docs.json", "deploymentconfig-full.json", "deploymentconfig-aksendpoint.json", "deploymentconfig-local.json"} {
		f.Add(readTestdata(f, file))
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"aks"`, `{"computeType":"aks"}`, `{"computeType":"AKS","numReplicas":0}`,
		`{"computeType":"aks","autoScaler":{"minReplicas":1e400}}`, `{"computeType":"aks","gpuCores":-0}`,
		`{"computeType":"aks","containerResourceRequirements":{"cpu":-1e-320}}`, `{"computeType":"local","port":-1}`,
		`{"computeType":"aksendpoint","trafficPercentile":1e308,"versionName":"\u00e9"}`, `{"computeType":"aks","keys":{"":"x"}}`,
		`{"computeType":"aks","numReplicas":9223372036854775807}`, `{"computeType":"aks","numReplicas":-2147483648}`,
		`{"computeType":"aks","aksml":{"maxBatchSize":16,"maxBatchDelayMs":5}}`, `{"computeType":"aks","aksml":{"maxBatchDelayMs":0}}`,
		`{"computeType":"aksendpoint","aksml":{"maxBatchSize":1024,"maxBatchDelayMs":10000}}`, `{"computeType":"local","aksml":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := DecodeDeploymentConfig(data)
		for _, e := range errcode.Split(err) {
			if !errors.Is(e, errcode.InvalidArgument) {
				t.Fatalf("error without InvalidArgument: %v", e)
			}
		}
		if _, derr := DecodeDeployConfig(data); (derr == nil) != (err == nil && file.ComputeType == ComputeTypeAKS) {
			t.Fatalf("DecodeDeployConfig err = %v, DecodeDeploymentConfig err = %v, computeType %q", derr, err, file.ComputeType)
		}
		if err != nil {
			return
		}
		enc, err := file.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded file: %v", err)
		}
		again, err := DecodeDeploymentConfig(enc)
		if err != nil {
			t.Fatalf("decoding the encoded file: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(file, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}
