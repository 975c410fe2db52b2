package endpoint

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/errcodetest"
	"github.com/aksml/aksml/webservice"
	"github.com/google/go-cmp/cmp"
)

// TestVersionConfigValidate has one row per rule of reference §4 that a
// version config enforces (rows named "rule: ...").
func TestVersionConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      VersionConfig
		endpoint string
		want     []string
	}{
		{"valid: minimal", VersionConfig{VersionName: "ver1"}, "ep", nil},
		{"valid: name is 3+ characters, traffic bounds", VersionConfig{VersionName: "blue", TrafficPercentile: 100, IsDefault: true, IsControlVersion: true}, "ep", nil},
		{"valid: traffic 0 and a fraction", VersionConfig{VersionName: "green", TrafficPercentile: 12.5}, "ep", nil},
		{"valid: deploy settings", VersionConfig{VersionName: "gpu-v2", DeployConfig: webservice.DeployConfig{AutoscaleEnabled: new(false), NumReplicas: 2, GPUCores: 1, TokenAuthEnabled: true}}, "ep", nil},

		{"rule: version_name required", VersionConfig{}, "ep",
			[]string{"Invalid configuration, version_name is required"}},
		{"rule: version_name is a service name", VersionConfig{VersionName: "V_1"}, "ep",
			[]string{`version_name "V_1" is not a valid service name: it must start with a lowercase letter; it may contain only lowercase letters, digits and dashes (found 'V').`}},
		{"rule: version_name length", VersionConfig{VersionName: "v1"}, "endpoint",
			[]string{`version_name "v1" is not a valid service name: it must be 3 to 32 characters long (it has 2).`}},
		{"rule: version_name differs from the endpoint name", VersionConfig{VersionName: "scorer"}, "scorer",
			[]string{`version_name "scorer" must differ from the endpoint name`}},
		{"rule: traffic_percentile not negative", VersionConfig{VersionName: "blue", TrafficPercentile: -1}, "ep",
			[]string{"traffic_percentile -1 must be between 0 and 100"}},
		{"rule: traffic_percentile at most 100", VersionConfig{VersionName: "blue", TrafficPercentile: 100.5}, "ep",
			[]string{"traffic_percentile 100.5 must be between 0 and 100"}},
		{"rule: traffic_percentile a number", VersionConfig{VersionName: "blue", TrafficPercentile: math.NaN()}, "ep",
			[]string{"traffic_percentile NaN must be between 0 and 100"}},
		{"rule: no blobfuse_enabled for an endpoint", VersionConfig{VersionName: "blue", DeployConfig: webservice.DeployConfig{BlobfuseEnabled: new(true)}}, "ep",
			[]string{"blobfuse_enabled true is not a parameter of an endpoint version"}},
		{"rule: the DeployConfig rules apply", VersionConfig{VersionName: "blue", DeployConfig: webservice.DeployConfig{AutoscaleEnabled: new(true), NumReplicas: 2}}, "ep",
			[]string{"autoscale enabled and num_replicas 2 provided"}},
		{"every broken rule at once", VersionConfig{VersionName: "ep1", TrafficPercentile: 200,
			DeployConfig: webservice.DeployConfig{CPUCores: -1, AuthEnabled: new(true), TokenAuthEnabled: true, BlobfuseEnabled: new(false)}}, "ep1",
			[]string{"cpu_cores -1", "cannot both be true", "traffic_percentile 200", "blobfuse_enabled false", `version_name "ep1" must differ`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errcodetest.CheckInvalid(t, tt.cfg.ValidateFor(tt.endpoint), tt.want, false)
			// Validate is ValidateFor without the endpoint-name rule.
			var want []string
			for _, w := range tt.want {
				if !strings.Contains(w, "must differ") {
					want = append(want, w)
				}
			}
			errcodetest.CheckInvalid(t, tt.cfg.Validate(), want, false)
		})
	}
}

func TestVersionConfigJSON(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "deploymentconfig-aksendpoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeVersionConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	want := VersionConfig{
		VersionName: "version-b", TrafficPercentile: 20,
		DeployConfig: webservice.DeployConfig{
			AutoscaleEnabled: new(true), AutoscaleMinReplicas: 1, AutoscaleMaxReplicas: 4, CPUCores: 0.2, MemoryGB: 0.5,
			TokenAuthEnabled: true, AuthEnabled: new(false), ScoringTimeoutMs: 5000, Namespace: "rollout",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("decode mismatch (-want +got):\n%s", diff)
	}
	enc, err := EncodeVersionConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(enc) != string(data) {
		t.Errorf("encoding differs from the source file:\n%s\nwant:\n%s", enc, data)
	}
	// Fields the file has no key for are left out.
	withFlags := got
	withFlags.IsDefault, withFlags.IsControlVersion = true, true
	enc2, err := EncodeVersionConfig(withFlags)
	if err != nil || string(enc2) != string(enc) {
		t.Errorf("IsDefault/IsControlVersion changed the file: %v\n%s", err, enc2)
	}
	if err := got.ValidateFor("endpoint"); err != nil {
		t.Errorf("ValidateFor: %v", err)
	}
}

func TestDecodeVersionConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"computeType aks", `{"computeType": "aks", "numReplicas": 2}`, []string{"computeType aks is not aksendpoint"}},
		{"computeType local", `{"computeType": "local"}`, []string{"computeType local is not aksendpoint"}},
		{"computeType missing", `{"versionName": "v2"}`, []string{"computeType is required"}},
		{"versionName missing", `{"computeType": "aksendpoint"}`, []string{"version_name is required"}},
		{"versionName type", `{"computeType": "aksendpoint", "versionName": 2}`, []string{"versionName must be a string, not a number 2", "version_name is required"}},
		{"versionName invalid", `{"computeType": "aksendpoint", "versionName": "Blue"}`, []string{`version_name "Blue" is not a valid service name`}},
		{"trafficPercentile range", `{"computeType": "aksendpoint", "versionName": "blue", "trafficPercentile": 101}`, []string{"traffic_percentile 101 must be between 0 and 100"}},
		{"unknown field isDefault", `{"computeType": "aksendpoint", "versionName": "blue", "isDefault": true}`, []string{"unknown field isDefault"}},
		{"everything at once", `{"computeType": "aksendpoint", "trafficPercentile": -5, "numReplicas": 0, "autoScaler": {"autoscaleEnabled": true, "maxReplicas": -1}}`,
			[]string{"numReplicas (num_replicas) 0 must be greater than zero", "autoscale_max_replicas -1 must be greater than zero", "version_name is required", "traffic_percentile -5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeVersionConfig([]byte(tt.in))
			errcodetest.CheckInvalid(t, err, tt.want, false)
		})
	}
}

func TestEncodeVersionConfigError(t *testing.T) {
	t.Parallel()
	_, err := EncodeVersionConfig(VersionConfig{VersionName: "v", TrafficPercentile: math.Inf(1)})
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("err = %v, want InvalidArgument", err)
	}
}

// FuzzDecodeVersionConfig: no panic, InvalidArgument errors only, and a
// decoded config re-encodes to a file that decodes to the same value.
func FuzzDecodeVersionConfig(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "deploymentconfig-aksendpoint.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	for _, s := range []string{``, `{}`, `{"computeType":"aksendpoint"}`, `{"computeType":"aksendpoint","versionName":"abc","trafficPercentile":100}`,
		`{"computeType":"AKSENDPOINT","versionName":"a-b","trafficPercentile":1e-300,"gpuCores":3}`, `{"computeType":"aks","versionName":"abc"}`,
		`{"computeType":"aksendpoint","versionName":"abc","trafficPercentile":-0}`, `{"computeType":"aksendpoint","versionName":"abc","port":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeVersionConfig(data)
		for _, e := range errcode.Split(err) {
			if !errors.Is(e, errcode.InvalidArgument) {
				t.Fatalf("error without InvalidArgument: %v", e)
			}
		}
		if err != nil {
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("decoded without error but Validate fails: %v", verr)
		}
		enc, err := EncodeVersionConfig(c)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		again, err := DecodeVersionConfig(enc)
		if err != nil {
			t.Fatalf("decoding the encoded file: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(c, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}
