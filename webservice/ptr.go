package webservice

// Bool returns a pointer to v, for the optional *bool fields of DeployConfig,
// UpdateOptions and the endpoint types: AuthEnabled: webservice.Bool(true).
// It is new(true) for interpreters that do not know Go 1.26's new(expr),
// such as the yaegi interpreter of notebook kernels.
func Bool(v bool) *bool { return &v }

// Float returns a pointer to v, for optional *float64 fields such as an
// endpoint version's TrafficPercentile: webservice.Float(50).
func Float(v float64) *float64 { return &v }

// String returns a pointer to v, for optional *string fields such as an
// endpoint's Description.
func String(v string) *string { return &v }
