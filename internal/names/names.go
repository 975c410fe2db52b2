package names

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aksml/aksml/errcode"
)

// Rule is one of Azure ML's naming rules: Min to Max characters, only
// ASCII letters (lowercase ones when Lowercase), digits and dashes,
// starting with a letter and ending with a letter or digit.
type Rule struct {
	What      string // "compute target", "service": names the kind in messages
	Min, Max  int
	Lowercase bool
}

// Check returns nil when name follows r, or one errcode.InvalidArgument
// error listing every part of r it breaks: `Invalid service name "X": it
// must …; it must ….`.
func (r Rule) Check(name string) error {
	letter := "letter"
	if r.Lowercase {
		letter = "lowercase letter"
	}
	isLetter := func(c rune) bool {
		return c >= 'a' && c <= 'z' || !r.Lowercase && c >= 'A' && c <= 'Z'
	}
	isDigit := func(c rune) bool { return c >= '0' && c <= '9' }
	var problems []string
	if n := utf8.RuneCountInString(name); n < r.Min || n > r.Max {
		problems = append(problems, fmt.Sprintf("must be %d to %d characters long (it has %d)", r.Min, r.Max, n))
	}
	if name != "" {
		if !isLetter(rune(name[0])) {
			problems = append(problems, "must start with a "+letter)
		}
		if last := rune(name[len(name)-1]); !isLetter(last) && !isDigit(last) {
			problems = append(problems, "must end with a "+letter+" or digit")
		}
		if i := strings.IndexFunc(name, func(c rune) bool { return !(isLetter(c) || isDigit(c) || c == '-') }); i >= 0 {
			c, _ := utf8.DecodeRuneInString(name[i:])
			problems = append(problems, fmt.Sprintf("may contain only %ss, digits and dashes (found %q)", letter, c))
		}
	}
	if problems == nil {
		return nil
	}
	return errcode.Errorf(errcode.InvalidArgument, "Invalid %s name %q: it %s.", r.What, name, strings.Join(problems, "; it "))
}
