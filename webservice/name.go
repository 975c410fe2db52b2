package webservice

import "github.com/aksml/aksml/internal/names"

// Limits of a service name.
const (
	MinNameLength = 3
	MaxNameLength = 32
)

// ValidateName checks a service name as the SDK does: 3 to 32 characters,
// lowercase ASCII letters, digits and dashes, starting with a letter and
// ending with a letter or digit (regex ^[a-z]([-a-z0-9]*[a-z0-9])?$). The
// error, one errcode.InvalidArgument, lists every rule the name breaks.
// Endpoint version names follow the same rules.
func ValidateName(name string) error {
	return serviceName.Check(name)
}

var serviceName = names.Rule{What: "service", Min: MinNameLength, Max: MaxNameLength, Lowercase: true}
