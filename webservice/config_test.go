package webservice

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/internal/errcodetest"
	"github.com/google/go-cmp/cmp"
)

// TestDeployConfigValidate has one row per client-side rule of reference §2
// (rows named "rule: ..."), plus the server-side scoring timeout cap and
// valid configurations.
func TestDeployConfigValidate(t *testing.T) {
	t.Parallel()
	on, off := new(true), new(false)
	tests := []struct {
		name string
		cfg  DeployConfig
		want []string
	}{
		{"valid: zero value", DeployConfig{}, nil},
		{"valid: autoscale with every setting", DeployConfig{AutoscaleEnabled: on, AutoscaleMinReplicas: 2, AutoscaleMaxReplicas: 2, AutoscaleRefreshSeconds: 5, AutoscaleTargetUtilization: 150}, nil},
		{"valid: fixed replicas, autoscale off", DeployConfig{AutoscaleEnabled: off, NumReplicas: 3}, nil},
		{"valid: num_replicas alone", DeployConfig{NumReplicas: 1}, nil},
		{"valid: token auth with auth unset", DeployConfig{TokenAuthEnabled: true}, nil},
		{"valid: token auth with auth off (the samples)", DeployConfig{TokenAuthEnabled: true, AuthEnabled: off}, nil},
		{"valid: limits equal to requests", DeployConfig{CPUCores: 1, CPUCoresLimit: 1, MemoryGB: 2, MemoryGBLimit: 2}, nil},
		{"valid: limits above default requests", DeployConfig{CPUCoresLimit: 0.1, MemoryGBLimit: 0.5}, nil},
		{"valid: 63-character namespace and cap timeout", DeployConfig{Namespace: "a" + strings.Repeat("-", 61) + "0", ScoringTimeoutMs: 300000}, nil},
		{"valid: every field", DeployConfig{AutoscaleEnabled: off, NumReplicas: 2, CPUCores: 2, CPUCoresLimit: 3, MemoryGB: 4, MemoryGBLimit: 8, GPUCores: 1,
			AuthEnabled: on, PrimaryKey: "p", SecondaryKey: "s", ScoringTimeoutMs: 1, ReplicaMaxConcurrentRequests: 4, MaxRequestWaitTimeMs: 2,
			PeriodSeconds: 1, InitialDelaySeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1, Namespace: "n", ComputeTargetName: "aks",
			Description: "d", Tags: map[string]string{"a": "b"}, Properties: map[string]string{"c": "d"}, CollectModelData: true, EnableAppInsights: true, BlobfuseEnabled: off}, nil},

		{"rule: cpu_cores > 0", DeployConfig{CPUCores: -1}, []string{"Invalid configuration, cpu_cores -1 must be greater than zero."}},
		{"rule: cpu_cores finite", DeployConfig{CPUCores: math.NaN()}, []string{"cpu_cores NaN must be a finite number greater than zero"}},
		{"rule: cpu_cores_limit > 0", DeployConfig{CPUCoresLimit: -0.5}, []string{"cpu_cores_limit -0.5 must be greater than zero"}},
		{"rule: cpu_cores_limit >= cpu_cores", DeployConfig{CPUCores: 1, CPUCoresLimit: 0.5}, []string{"cpu_cores_limit 0.5 must be greater than or equal to cpu_cores 1."}},
		{"rule: cpu_cores_limit >= default cpu_cores", DeployConfig{CPUCoresLimit: 0.05}, []string{"cpu_cores_limit 0.05 must be greater than or equal to cpu_cores 0.1 (the default)"}},
		{"rule: memory_gb > 0", DeployConfig{MemoryGB: -2}, []string{"memory_gb -2 must be greater than zero"}},
		{"rule: memory_gb_limit > 0", DeployConfig{MemoryGBLimit: math.Inf(-1)}, []string{"memory_gb_limit -Inf must be a finite number"}},
		{"rule: memory_gb_limit >= memory_gb", DeployConfig{MemoryGB: 2, MemoryGBLimit: 1}, []string{"memory_gb_limit 1 must be greater than or equal to memory_gb 2."}},
		{"rule: gpu_cores >= 0", DeployConfig{GPUCores: -1}, []string{"gpu_cores -1 must be greater than or equal to zero"}},
		{"rule: period_seconds > 0", DeployConfig{PeriodSeconds: -1}, []string{"period_seconds -1 must be greater than zero"}},
		{"rule: initial_delay_seconds > 0", DeployConfig{InitialDelaySeconds: -1}, []string{"initial_delay_seconds -1 must be greater than zero"}},
		{"rule: timeout_seconds > 0", DeployConfig{TimeoutSeconds: -1}, []string{"timeout_seconds -1 must be greater than zero"}},
		{"rule: success_threshold > 0", DeployConfig{SuccessThreshold: -1}, []string{"success_threshold -1 must be greater than zero"}},
		{"rule: failure_threshold > 0", DeployConfig{FailureThreshold: -1}, []string{"failure_threshold -1 must be greater than zero"}},
		{"rule: namespace regex", DeployConfig{Namespace: "ML_prod"}, []string{`namespace "ML_prod" must be a valid Kubernetes namespace (regex ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$)`}},
		{"rule: namespace regex, 64 characters", DeployConfig{Namespace: strings.Repeat("a", 64)}, []string{"must be a valid Kubernetes namespace"}},
		{"rule: namespace regex, trailing dash", DeployConfig{Namespace: "ml-"}, []string{"must be a valid Kubernetes namespace"}},
		{"rule: scoring_timeout_ms > 0", DeployConfig{ScoringTimeoutMs: -1}, []string{"scoring_timeout_ms -1 must be greater than zero"}},
		{"rule: scoring_timeout_ms <= 300000 (server)", DeployConfig{ScoringTimeoutMs: 300001}, []string{"scoring_timeout_ms 300001 is above the 300000 ms the service allows"}},
		{"rule: replica_max_concurrent_requests > 0", DeployConfig{ReplicaMaxConcurrentRequests: -3}, []string{"replica_max_concurrent_requests -3 must be greater than zero"}},
		{"rule: max_request_wait_time > 0", DeployConfig{MaxRequestWaitTimeMs: -1}, []string{"max_request_wait_time -1 must be greater than zero"}},
		{"rule: num_replicas > 0", DeployConfig{NumReplicas: -1}, []string{"num_replicas -1 must be greater than zero"}},
		{"rule: autoscale enabled and num_replicas", DeployConfig{AutoscaleEnabled: on, NumReplicas: 2}, []string{"autoscale enabled and num_replicas 2 provided"}},
		{"rule: autoscale_min_replicas > 0", DeployConfig{AutoscaleEnabled: on, AutoscaleMinReplicas: -1}, []string{"autoscale_min_replicas -1 must be greater than zero"}},
		{"rule: autoscale_max_replicas > 0", DeployConfig{AutoscaleEnabled: on, AutoscaleMaxReplicas: -1}, []string{"autoscale_max_replicas -1 must be greater than zero"}},
		{"rule: autoscale_min_replicas <= autoscale_max_replicas", DeployConfig{AutoscaleEnabled: on, AutoscaleMinReplicas: 5, AutoscaleMaxReplicas: 4}, []string{"autoscale_min_replicas 5 cannot be greater than autoscale_max_replicas 4."}},
		{"rule: autoscale_min_replicas <= default max", DeployConfig{AutoscaleEnabled: on, AutoscaleMinReplicas: 11}, []string{"autoscale_min_replicas 11 cannot be greater than autoscale_max_replicas 10 (the default)"}},
		{"rule: autoscale_refresh_seconds > 0", DeployConfig{AutoscaleEnabled: on, AutoscaleRefreshSeconds: -1}, []string{"autoscale_refresh_seconds -1 must be greater than zero"}},
		{"rule: autoscale_target_utilization > 0", DeployConfig{AutoscaleEnabled: on, AutoscaleTargetUtilization: -70}, []string{"autoscale_target_utilization -70 must be greater than zero"}},
		{"rule: autoscale disabled needs num_replicas", DeployConfig{AutoscaleEnabled: off}, []string{"Invalid configuration, autoscale disabled but num_replicas not provided."}},
		{"rule: autoscale_min_replicas without enabling (unset)", DeployConfig{AutoscaleMinReplicas: 2}, []string{"autoscale_min_replicas 2 provided without enabling autoscaling"}},
		{"rule: autoscale_max_replicas without enabling (false)", DeployConfig{AutoscaleEnabled: off, NumReplicas: 1, AutoscaleMaxReplicas: 2}, []string{"autoscale_max_replicas 2 provided without enabling autoscaling"}},
		{"rule: autoscale_refresh_seconds without enabling", DeployConfig{AutoscaleRefreshSeconds: 2}, []string{"autoscale_refresh_seconds 2 provided without enabling autoscaling"}},
		{"rule: autoscale_target_utilization without enabling", DeployConfig{NumReplicas: 1, AutoscaleTargetUtilization: 50}, []string{"autoscale_target_utilization 50 provided without enabling autoscaling"}},
		{"rule: auth_enabled and token_auth_enabled not both true", DeployConfig{AuthEnabled: on, TokenAuthEnabled: true}, []string{"Invalid configuration, auth_enabled and token_auth_enabled cannot both be true."}},

		{"every broken rule at once", DeployConfig{
			CPUCores: -1, MemoryGB: 1, MemoryGBLimit: 0.5, GPUCores: -2, Namespace: "X", ScoringTimeoutMs: 400000,
			AutoscaleEnabled: off, AutoscaleMinReplicas: 3, AuthEnabled: on, TokenAuthEnabled: true,
		}, []string{"cpu_cores -1", "memory_gb_limit 0.5", "gpu_cores -2", `namespace "X"`, "scoring_timeout_ms 400000",
			"autoscale disabled but num_replicas not provided", "autoscale_min_replicas 3 provided without enabling", "cannot both be true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errcodetest.CheckInvalid(t, tt.cfg.Validate(), tt.want, true)
		})
	}
}

func TestDeployConfigEffective(t *testing.T) {
	t.Parallel()
	defaults := EffectiveConfig{
		Autoscale: true, Replicas: 1, MinReplicas: 1, MaxReplicas: 10, RefreshPeriod: time.Second, TargetUtilization: 70,
		CPUCores: 0.1, MemoryGB: 0.5, Auth: AuthKey,
		ScoringTimeout: time.Minute, MaxConcurrentRequests: 1, MaxRequestWait: 500 * time.Millisecond,
		Liveness: LivenessProbe{Period: 10 * time.Second, InitialDelay: 310 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3},
		Blobfuse: true,
	}
	with := func(f func(*EffectiveConfig)) EffectiveConfig { e := defaults; f(&e); return e }
	tests := []struct {
		name string
		cfg  DeployConfig
		want EffectiveConfig
	}{
		{"zero value: every default", DeployConfig{}, defaults},
		{"num_replicas turns autoscale off", DeployConfig{NumReplicas: 4}, with(func(e *EffectiveConfig) { e.Autoscale, e.Replicas = false, 4 })},
		{"explicit autoscale starts at min", DeployConfig{AutoscaleEnabled: new(true), AutoscaleMinReplicas: 2, AutoscaleMaxReplicas: 6, AutoscaleRefreshSeconds: 3, AutoscaleTargetUtilization: 50},
			with(func(e *EffectiveConfig) {
				e.Replicas, e.MinReplicas, e.MaxReplicas, e.RefreshPeriod, e.TargetUtilization = 2, 2, 6, 3*time.Second, 50
			})},
		{"token auth replaces key auth", DeployConfig{TokenAuthEnabled: true}, with(func(e *EffectiveConfig) { e.Auth = AuthToken })},
		{"auth off", DeployConfig{AuthEnabled: new(false)}, with(func(e *EffectiveConfig) { e.Auth = AuthNone })},
		{"blobfuse off", DeployConfig{BlobfuseEnabled: new(false)}, with(func(e *EffectiveConfig) { e.Blobfuse = false })},
		{"given values carried", DeployConfig{CPUCores: 2, CPUCoresLimit: 3, MemoryGB: 4, MemoryGBLimit: 5, GPUCores: 1, PrimaryKey: "p", SecondaryKey: "s",
			ScoringTimeoutMs: 1500, ReplicaMaxConcurrentRequests: 8, MaxRequestWaitTimeMs: 50, PeriodSeconds: 2, InitialDelaySeconds: 3, TimeoutSeconds: 4,
			SuccessThreshold: 5, FailureThreshold: 6, Namespace: "ns", ComputeTargetName: "aks", Description: "d", Tags: map[string]string{"k": "v"},
			Properties: map[string]string{"p": "q"}, CollectModelData: true, EnableAppInsights: true},
			with(func(e *EffectiveConfig) {
				e.CPUCores, e.CPUCoresLimit, e.MemoryGB, e.MemoryGBLimit, e.GPUCores = 2, 3, 4, 5, 1
				e.PrimaryKey, e.SecondaryKey = "p", "s"
				e.ScoringTimeout, e.MaxConcurrentRequests, e.MaxRequestWait = 1500*time.Millisecond, 8, 50*time.Millisecond
				e.Liveness = LivenessProbe{Period: 2 * time.Second, InitialDelay: 3 * time.Second, Timeout: 4 * time.Second, SuccessThreshold: 5, FailureThreshold: 6}
				e.Namespace, e.ComputeTargetName, e.Description = "ns", "aks", "d"
				e.Tags, e.Properties = map[string]string{"k": "v"}, map[string]string{"p": "q"}
				e.CollectModelData, e.AppInsights = true, true
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.cfg.Effective()); diff != "" {
				t.Errorf("Effective() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("maps are copies", func(t *testing.T) {
		t.Parallel()
		c := DeployConfig{Tags: map[string]string{"a": "1"}}
		e := c.Effective()
		e.Tags["a"] = "2"
		if c.Tags["a"] != "1" {
			t.Error("Effective shares the Tags map with the config")
		}
	})
}

// TestValidateName has one row per rule of the service name (reference §2).
func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"valid: shortest", "abc", nil},
		{"valid: longest", "a" + strings.Repeat("-", 30) + "9", nil},
		{"valid: typical", "sklearn-mnist-svc", nil},
		{"rule: at least 3 characters", "ab", []string{"must be 3 to 32 characters long (it has 2)"}},
		{"rule: at most 32 characters", strings.Repeat("a", 33), []string{"(it has 33)"}},
		{"rule: starts with a lowercase letter", "9abc", []string{"must start with a lowercase letter"}},
		{"rule: ends with a lowercase letter or digit", "abc-", []string{"must end with a lowercase letter or digit"}},
		{"rule: lowercase letters, digits and dashes only", "aBc", []string{"may contain only lowercase letters, digits and dashes (found 'B')"}},
		{"several at once", "-A_", []string{"start with a lowercase letter", "end with a lowercase letter or digit", "(found 'A')"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errcodetest.CheckOne(t, ValidateName(tt.in), tt.want)
		})
	}
}
