// Package webservice deploys and runs one model scoring service on a
// cluster, mirroring the Azure ML SDK v1 AksWebservice and Webservice
// classes.
//
// DeployConfig carries every parameter of AksWebservice.deploy_configuration
// as a plain value: autoscaling, replica count, CPU, memory and GPU requests
// and limits, key or token authentication, timeouts and queueing, the
// liveness probe, namespace, tags and properties. A zero field means what
// None means in the SDK, the service default; the three flags whose default
// is not false or that the rules need to see as "given" (AutoscaleEnabled,
// AuthEnabled, BlobfuseEnabled) are *bool. Effective resolves every default
// into the values backends run with.
//
// Validate reports every broken rule at once, as one error joining an
// errcode.InvalidArgument error per rule, in the SDK's "Invalid
// configuration, ..." wording, naming the SDK parameter, the value and the
// rule — the SDK's client-side checks plus the service's cap of 300000 ms on
// scoring_timeout_ms. ValidateName checks service names.
//
// DecodeDeploymentConfig reads the deploymentconfig.json file that
// `az ml model deploy --dc` reads (computeType aks, aksendpoint or local);
// DeployConfig also converts to and from its computeType aks form with
// encoding/json. Decoding reports unknown fields with their JSON path, wrong
// JSON types, and an explicit 0 where a value must be greater than zero.
package webservice
