package endpoint_test

import (
	"fmt"

	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/webservice"
)

// A treatment version taking 10% of the endpoint's traffic; the version
// name must differ from the endpoint's.
func ExampleVersionConfig_ValidateFor() {
	v := endpoint.VersionConfig{
		VersionName:       "scorer",
		TrafficPercentile: 110,
		DeployConfig:      webservice.DeployConfig{CPUCores: 0.5, NumReplicas: 2},
	}
	fmt.Println(v.ValidateFor("scorer"))

	v.VersionName, v.TrafficPercentile = "scorer-v2", 10
	fmt.Println(v.ValidateFor("scorer"))
	// Output:
	// Invalid configuration, traffic_percentile 110 must be between 0 and 100.
	// Invalid configuration, version_name "scorer" must differ from the endpoint name: a version named like its endpoint breaks later endpoint updates.
	// <nil>
}

// Read a deploymentconfig.json of computeType aksendpoint and write it back.
func ExampleDecodeVersionConfig() {
	v, err := endpoint.DecodeVersionConfig([]byte(`{
	    "computeType": "AKSENDPOINT",
	    "versionName": "version-b",
	    "trafficPercentile": 20,
	    "containerResourceRequirements": {"cpu": 0.2, "memoryInGB": 0.5},
	    "numReplicas": 1
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v.VersionName, v.TrafficPercentile, v.CPUCores, v.Effective().Autoscale)

	v.TrafficPercentile = 50
	out, _ := endpoint.EncodeVersionConfig(v)
	fmt.Print(string(out))
	// Output:
	// version-b 20 0.2 false
	// {
	//   "computeType": "aksendpoint",
	//   "versionName": "version-b",
	//   "trafficPercentile": 50,
	//   "numReplicas": 1,
	//   "containerResourceRequirements": {
	//     "cpu": 0.2,
	//     "memoryInGB": 0.5
	//   }
	// }
}
