package fe_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/kube/fe"
)

func TestParseReplicaAddressPrefix(t *testing.T) {
	t.Parallel()
	f, err := fe.ParseReplicaAddressPrefix("10.244.=127.77.")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"10.244.3.7": "http://127.77.3.7:5001",
		"10.2.3.4":   "http://10.2.3.4:5001",
		"fd00::1":    "http://[fd00::1]:5001",
	} {
		if got := f(addr, 5001); got != want {
			t.Errorf("%s → %s, want %s", addr, got, want)
		}
	}
	if f, err := fe.ParseReplicaAddressPrefix(""); f != nil || err != nil {
		t.Errorf("empty: %v %v, want nil, nil", f != nil, err)
	}
	for in, want := range map[string]string{
		"10.244.":           "must be FROM=TO",
		"10.244=127.77.":    `FROM "10.244" must end in a dot`,
		"10.244.=127.777.":  `TO "127.777." octets must be decimal numbers 0-255`,
		"10.244.=127.":      "same number of octets",
		"1.2.3.4.=1.2.3.4.": "more than three octets",
		"10.0x1.=127.1.":    "decimal",
	} {
		_, err := fe.ParseReplicaAddressPrefix(in)
		if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "replica-address-prefix") {
			t.Errorf("%q: %v, want InvalidArgument naming the flag and %q", in, err, want)
		}
	}
}

// FuzzParseReplicaAddressPrefix: any flag value is refused with
// InvalidArgument or gives a mapping that keeps addresses outside FROM and
// maps those inside to TO.
func FuzzParseReplicaAddressPrefix(f *testing.F) {
	f.Add("10.244.=127.77.", "10.244.1.2")
	f.Add("=", "1.2.3.4")
	f.Add("1.=2.", "1.1.1.1")
	f.Fuzz(func(t *testing.T, flag, addr string) {
		m, err := fe.ParseReplicaAddressPrefix(flag)
		if err != nil {
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("%q: %v is not InvalidArgument", flag, err)
			}
			return
		}
		if m == nil {
			if flag != "" {
				t.Fatalf("%q: no mapping and no error", flag)
			}
			return
		}
		from, to, _ := strings.Cut(flag, "=")
		got := m(addr, 80)
		if rest, ok := strings.CutPrefix(addr, from); ok && !strings.Contains(got, to+rest) {
			t.Fatalf("%q maps %q to %q, want %q inside", flag, addr, got, to+rest)
		}
	})
}
