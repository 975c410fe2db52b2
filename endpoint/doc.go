// Package endpoint serves several versions of a model behind one scoring
// endpoint with a traffic split, mirroring the Azure ML SDK v1 AksEndpoint
// (controlled rollout): up to six versions, one of them the default that
// takes the traffic no version claims, exactly one control version and any
// number of treatments.
//
// VersionConfig is the configuration of one version, the parameters of
// AksEndpoint.deploy_configuration and create_version: every field of
// webservice.DeployConfig except blobfuse_enabled, plus the version name,
// its traffic percentile (0 to 100, default 0), and whether it is the
// default or the control version. Validate reports every broken rule at
// once; ValidateFor also checks the version name against the endpoint's,
// which must differ.
//
// DecodeVersionConfig and EncodeVersionConfig read and write the
// deploymentconfig.json file of computeType aksendpoint.
package endpoint
