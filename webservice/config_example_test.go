package webservice_test

import (
	"fmt"

	"github.com/aksml/aksml/webservice"
)

// Read a deploymentconfig.json file, change it, and write it back.
func ExampleDecodeDeploymentConfig() {
	data := []byte(`{
	    "computeType": "aks",
	    "autoScaler": {"autoscaleEnabled": true, "minReplicas": 1, "maxReplicas": 3},
	    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0},
	    "gpuCores": 1,
	    "tokenAuthEnabled": true,
	    "authEnabled": false
	}`)
	f, err := webservice.DecodeDeploymentConfig(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := f.DeployConfig
	fmt.Println(f.ComputeType, *cfg.AutoscaleEnabled, cfg.AutoscaleMaxReplicas, cfg.CPUCores, cfg.GPUCores)

	cfg.AutoscaleMaxReplicas = 5
	out, err := webservice.EncodeDeployConfig(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// aks true 3 0.5 1
	// {
	//   "computeType": "aks",
	//   "autoScaler": {
	//     "autoscaleEnabled": true,
	//     "minReplicas": 1,
	//     "maxReplicas": 5
	//   },
	//   "containerResourceRequirements": {
	//     "cpu": 0.5,
	//     "memoryInGB": 1
	//   },
	//   "gpuCores": 1,
	//   "authEnabled": false,
	//   "tokenAuthEnabled": true
	// }
}

// Decoding reports every problem of a file at once: unknown fields by JSON
// path, explicit zeros, and the deploy configuration rules.
func ExampleDecodeDeploymentConfig_errors() {
	_, err := webservice.DecodeDeploymentConfig([]byte(`{
	    "computeType": "AKS",
	    "autoScaler": {"minReplicas": 2, "maxReplica": 4},
	    "numReplicas": 0,
	    "scoringTimeoutMs": 600000
	}`))
	fmt.Println(err)
	// Output:
	// Invalid deployment config JSON, unknown field autoScaler.maxReplica.
	// Invalid deployment config JSON, numReplicas (num_replicas) 0 must be greater than zero (leave it out for the default).
	// Invalid configuration, scoring_timeout_ms 600000 is above the 300000 ms the service allows.
	// Invalid configuration, autoscale_min_replicas 2 provided without enabling autoscaling (set autoscale_enabled to true).
}

func ExampleDeployConfig_Validate() {
	cfg := webservice.DeployConfig{
		AutoscaleEnabled: new(false),
		CPUCores:         1,
		CPUCoresLimit:    0.5,
		AuthEnabled:      new(true),
		TokenAuthEnabled: true,
	}
	fmt.Println(cfg.Validate())
	// Output:
	// Invalid configuration, cpu_cores_limit 0.5 must be greater than or equal to cpu_cores 1.
	// Invalid configuration, autoscale disabled but num_replicas not provided.
	// Invalid configuration, auth_enabled and token_auth_enabled cannot both be true.
}

func ExampleDeployConfig_Effective() {
	e := webservice.DeployConfig{}.Effective()
	fmt.Println(e.Autoscale, e.MinReplicas, e.MaxReplicas, e.RefreshPeriod, e.TargetUtilization)
	fmt.Println(e.CPUCores, e.MemoryGB, e.GPUCores, e.Auth)
	fmt.Println(e.ScoringTimeout, e.MaxConcurrentRequests, e.MaxRequestWait)
	fmt.Printf("%+v\n", e.Liveness)

	e = webservice.DeployConfig{NumReplicas: 3, TokenAuthEnabled: true}.Effective()
	fmt.Println(e.Autoscale, e.Replicas, e.Auth)
	// Output:
	// true 1 10 1s 70
	// 0.1 0.5 0 key
	// 1m0s 1 500ms
	// {Period:10s InitialDelay:5m10s Timeout:1s SuccessThreshold:1 FailureThreshold:3}
	// false 3 token
}

func ExampleValidateName() {
	fmt.Println(webservice.ValidateName("sklearn-mnist"))
	fmt.Println(webservice.ValidateName("My_Service"))
	// Output:
	// <nil>
	// Invalid service name "My_Service": it must start with a lowercase letter; it may contain only lowercase letters, digits and dashes (found 'M').
}
