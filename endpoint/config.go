package endpoint

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/webservice"
)

// Traffic percentile bounds of a version.
const (
	MinTrafficPercentile = 0
	MaxTrafficPercentile = 100
)

// VersionConfig is the configuration of one version of an endpoint, the
// parameters of AksEndpoint.deploy_configuration and create_version. The
// embedded DeployConfig holds the replica, resource, auth and probe
// settings with their defaults and rules; BlobfuseEnabled is not a
// parameter of an endpoint and must stay nil.
type VersionConfig struct {
	webservice.DeployConfig

	// VersionName names the version (version_name). It follows the rules of
	// a service name and must differ from the endpoint's name. The SDK
	// defaulted it to the endpoint's name, which breaks later updates of
	// the endpoint (azure-docs#53364), so aksml requires it.
	VersionName string
	// TrafficPercentile is the share of the endpoint's traffic, 0 to 100,
	// the version receives (traffic_percentile); 0 by default. The default
	// version also receives what no version claims.
	TrafficPercentile float64
	// IsDefault makes the version the endpoint's default (is_default).
	IsDefault bool
	// IsControlVersion makes the version the endpoint's control, the
	// others treatments (is_control_version_type).
	IsControlVersion bool
}

// Validate reports every rule c breaks, as one error joining an
// errcode.InvalidArgument error per rule, or nil: every rule of
// webservice.DeployConfig.Validate, and version_name given and a valid
// service name, traffic_percentile between 0 and 100, blobfuse_enabled not
// given. Use ValidateFor when the endpoint's name is known.
func (c VersionConfig) Validate() error {
	return errors.Join(append(errcode.Split(c.DeployConfig.Validate()), c.versionProblems()...)...)
}

// ValidateFor is Validate plus the rule that needs the endpoint's name: the
// version name must differ from it.
func (c VersionConfig) ValidateFor(endpointName string) error {
	errs := append(errcode.Split(c.DeployConfig.Validate()), c.versionProblems()...)
	if c.VersionName != "" && c.VersionName == endpointName {
		errs = append(errs, invalidConfig("version_name %q must differ from the endpoint name: a version named like its endpoint breaks later endpoint updates", c.VersionName))
	}
	return errors.Join(errs...)
}

// versionProblems checks the fields VersionConfig adds to DeployConfig.
func (c VersionConfig) versionProblems() []error {
	var errs []error
	if c.VersionName == "" {
		errs = append(errs, invalidConfig("version_name is required: give each version its own name (the SDK's default, the endpoint name, breaks later endpoint updates)"))
	} else if err := webservice.ValidateName(c.VersionName); err != nil {
		why := strings.TrimPrefix(err.Error(), fmt.Sprintf("Invalid service name %q: ", c.VersionName))
		errs = append(errs, invalidConfig("version_name %q is not a valid service name: %s", c.VersionName, strings.TrimSuffix(why, ".")))
	}
	if p := c.TrafficPercentile; math.IsNaN(p) || p < MinTrafficPercentile || p > MaxTrafficPercentile {
		errs = append(errs, invalidConfig("traffic_percentile %v must be between %d and %d", p, MinTrafficPercentile, MaxTrafficPercentile))
	}
	if c.BlobfuseEnabled != nil {
		errs = append(errs, invalidConfig("blobfuse_enabled %v is not a parameter of an endpoint version", *c.BlobfuseEnabled))
	}
	return errs
}

// invalid returns an errcode.InvalidArgument error in the SDK's wording.
func invalidConfig(format string, args ...any) error {
	return errcode.Errorf(errcode.InvalidArgument, "Invalid configuration, "+format+".", args...)
}
