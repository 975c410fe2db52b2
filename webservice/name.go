package webservice

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aksml/aksml/errcode"
)

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
	var problems []string
	if n := utf8.RuneCountInString(name); n < MinNameLength || n > MaxNameLength {
		problems = append(problems, fmt.Sprintf("must be %d to %d characters long (it has %d)", MinNameLength, MaxNameLength, n))
	}
	if name != "" {
		if c := name[0]; c < 'a' || c > 'z' {
			problems = append(problems, "must start with a lowercase letter")
		}
		if c := name[len(name)-1]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			problems = append(problems, "must end with a lowercase letter or digit")
		}
		if i := strings.IndexFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
		}); i >= 0 {
			r, _ := utf8.DecodeRuneInString(name[i:])
			problems = append(problems, fmt.Sprintf("may contain only lowercase letters, digits and dashes (found %q)", r))
		}
	}
	if problems == nil {
		return nil
	}
	return errcode.Errorf(errcode.InvalidArgument, "Invalid service name %q: it %s.", name, strings.Join(problems, "; it "))
}
