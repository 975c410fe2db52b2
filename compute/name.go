package compute

import "github.com/aksml/aksml/internal/names"

// Limits of a compute target name.
const (
	MinNameLength = 3
	MaxNameLength = 24
)

// ValidateName checks a compute target name against the rules the Azure ML
// service applies (the SDK itself does not check them): 3 to 24 characters,
// only ASCII letters, digits and dashes, starting with a letter and ending
// with a letter or digit. The error, an errcode.InvalidArgument, lists every
// rule the name breaks. Uniqueness in the workspace is checked on creation.
func ValidateName(name string) error {
	return targetName.Check(name)
}

var targetName = names.Rule{What: "compute target", Min: MinNameLength, Max: MaxNameLength, Lowercase: false}
