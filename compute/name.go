package compute

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aksml/aksml/errcode"
)

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
	var problems []string
	if n := utf8.RuneCountInString(name); n < MinNameLength || n > MaxNameLength {
		problems = append(problems, fmt.Sprintf("must be %d to %d characters long (it has %d)", MinNameLength, MaxNameLength, n))
	}
	if name != "" {
		if !isNameLetter(name[0]) {
			problems = append(problems, "must start with a letter")
		}
		if last := name[len(name)-1]; !isNameLetter(last) && !isNameDigit(last) {
			problems = append(problems, "must end with a letter or digit")
		}
		if i := strings.IndexFunc(name, func(r rune) bool {
			return r >= utf8.RuneSelf || !(isNameLetter(byte(r)) || isNameDigit(byte(r)) || r == '-')
		}); i >= 0 {
			r, _ := utf8.DecodeRuneInString(name[i:])
			problems = append(problems, fmt.Sprintf("may contain only letters, digits and dashes (found %q)", r))
		}
	}
	if problems == nil {
		return nil
	}
	return errcode.Errorf(errcode.InvalidArgument, "Invalid compute target name %q: it %s.", name, strings.Join(problems, "; it "))
}

func isNameLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameDigit(c byte) bool  { return c >= '0' && c <= '9' }
