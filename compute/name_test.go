package compute

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/errcodetest"
)

// TestValidateName has one row per rule of the compute name (reference §1).
func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string // substrings of the one error; nil for valid
	}{
		{"valid: shortest", "abc", nil},
		{"valid: longest", strings.Repeat("a", 24), nil},
		{"valid: mixed case, digits, dashes", "My-AKS-01", nil},
		{"rule: at least 3 characters", "ab", []string{"must be 3 to 24 characters long (it has 2)"}},
		{"rule: at most 24 characters", strings.Repeat("a", 25), []string{"(it has 25)"}},
		{"rule: starts with a letter", "1aks", []string{"must start with a letter"}},
		{"rule: ends with a letter or digit", "aks-", []string{"must end with a letter or digit"}},
		{"rule: letters, digits and dashes only", "aks_1", []string{`may contain only letters, digits and dashes (found '_')`}},
		{"rule: ASCII letters only", "akś1", []string{`(found 'ś')`}},
		{"empty breaks length", "", []string{"(it has 0)"}},
		{"all rules at once", "-a.", []string{"start with a letter", "end with a letter or digit", "found '.'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errcodetest.CheckOne(t, ValidateName(tt.in), tt.want)
		})
	}
}

var nameRule = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9-]{1,22}[A-Za-z0-9])$`)

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"abc", "a-1", "1ab", "ab-", "a_b", "", "ś", "\xff\xfe", strings.Repeat("z", 30)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		if (err == nil) != nameRule.MatchString(s) {
			t.Fatalf("ValidateName(%q) = %v, regexp says %v", s, err, nameRule.MatchString(s))
		}
		if err != nil && !errors.Is(err, errcode.InvalidArgument) {
			t.Fatalf("error without InvalidArgument: %v", err)
		}
	})
}
