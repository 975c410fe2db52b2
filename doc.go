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
//
// Backends implement one contract, compute/driver, and pass one conformance
// suite, compute/drivertest: the in-process simulator (package simulator) and
// the Kubernetes backend. Errors carry a code from package errcode, matched
// with errors.Is.
//
// Start with examples/quickstart: it registers a model, creates a simulated
// AKS target, deploys it with key auth and scores it.
package aksml
