// Package aksml deploys machine-learning models as scoring web services on
// Kubernetes — Azure Kubernetes Service or any cluster — and ships an
// in-process simulator that behaves like AKS, so the same Go code is debugged
// and unit-tested locally before it goes to the cloud.
//
// The API mirrors the Azure ML SDK v1 deployment surface, which Microsoft has
// retired, so existing score.py entry scripts and deployment files keep
// working:
//
//	Azure ML SDK v1                 aksml
//	Workspace, Model.register       aml.Open, (*aml.Workspace).RegisterModel
//	Environment, InferenceConfig    aml.Environment, aml.InferenceConfig
//	AksCompute                      compute (targets, provisioning and attach configs)
//	Model.deploy                    aml.Deploy
//	AksWebservice                   webservice (DeployConfig, Service)
//	AksEndpoint                     endpoint (versions and traffic rules)
//	azureml-fe                      frontend (the router) and autoscale
//	azureml-inference-server-http   scoring (score.py host and Go handlers)
//	Webservice(ws, name), .list     webservice.Get, webservice.List
//	service.update(models=, inference_config=)  aml.UpdateService
//	service.update(other fields)    (*webservice.Service).Update
//	service.get_logs()              (*webservice.Service).Logs
//	service.get_keys(), regen_key   (*webservice.Service).Keys, RegenKey
//	service.get_access_token()      (*webservice.Service).Token
//	AksEndpoint.create_version      (*endpoint.Endpoint).CreateVersion
//	update_version, delete_version  (*endpoint.Endpoint).UpdateVersion, DeleteVersion
//
// The whole mapping, call by call, is docs/migration.md in the repository;
// docs/ also holds the concepts, the deploymentconfig.json and
// inferenceconfig.json reference and troubleshooting by error code. For
// unit tests, package simtest gives a test a workspace, a simulator and a
// compute target in one call.
//
// Backends implement one contract, compute/driver, and pass one conformance
// suite, compute/drivertest: the in-process simulator (package simulator) and
// the Kubernetes backend. Errors carry a code from package errcode, matched
// with errors.Is.
//
// Start with examples/quickstart: it registers a model, creates a simulated
// AKS target, deploys it with key auth and scores it.
package aksml
