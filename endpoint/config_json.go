package endpoint

import (
	"errors"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/webservice"
)

// DecodeVersionConfig decodes a deploymentconfig.json file of computeType
// aksendpoint: the fields of computeType aks (see
// webservice.DecodeDeploymentConfig) plus versionName and
// trafficPercentile. The error, when not nil, joins one
// errcode.InvalidArgument error per problem of the file and per broken rule
// of VersionConfig.Validate, all at once; check the version name against
// the endpoint's with ValidateFor. A file of another computeType is an
// error. The file has no keys for IsDefault and IsControlVersion (the CLI
// takes them as flags); they decode as false.
func DecodeVersionConfig(data []byte) (VersionConfig, error) {
	f, err := webservice.DecodeDeploymentConfig(data)
	c := VersionConfig{DeployConfig: f.DeployConfig, VersionName: f.VersionName, TrafficPercentile: f.TrafficPercentile}
	errs := []error{err}
	switch f.ComputeType {
	case webservice.ComputeTypeAKSEndpoint:
		errs = append(errs, c.versionProblems()...)
	case "": // reported by DecodeDeploymentConfig
	default:
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument,
			"Invalid deployment config JSON, computeType %s is not aksendpoint: an endpoint version config needs computeType aksendpoint (decode aks files with webservice.DecodeDeployConfig)", f.ComputeType))
	}
	return c, errors.Join(errs...)
}

// EncodeVersionConfig returns c as a deploymentconfig.json file of
// computeType aksendpoint, indented, without unset (zero) fields.
// IsDefault, IsControlVersion, Description, Tags, Properties and
// BlobfuseEnabled have no key in the file and are left out. It does not
// validate c; it fails (errcode.InvalidArgument) only for a NaN or infinite
// number.
func EncodeVersionConfig(c VersionConfig) ([]byte, error) {
	return webservice.DeploymentConfigFile{
		ComputeType:       webservice.ComputeTypeAKSEndpoint,
		DeployConfig:      c.DeployConfig,
		VersionName:       c.VersionName,
		TrafficPercentile: c.TrafficPercentile,
	}.Encode()
}
