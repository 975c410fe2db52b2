// Package errcodetest checks validation errors in tests: a joined error of
// errcode.InvalidArgument problems, one per broken rule, in order
// (CheckInvalid), or one error that names every rule broken, as a name
// check gives (CheckOne).
package errcodetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
)

// CheckInvalid fails t unless err joins exactly len(want) problems (see
// errcode.Split), each an errcode.InvalidArgument whose text contains the
// matching want, and unless err itself is InvalidArgument (or nil when
// want is empty). With sdkWording every problem must also start with
// "Invalid ", as the SDK words them.
func CheckInvalid(t testing.TB, err error, want []string, sdkWording bool) {
	t.Helper()
	got := errcode.Split(err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, e := range got {
		if !errors.Is(e, errcode.InvalidArgument) {
			t.Errorf("error %d %q is not InvalidArgument", i, e)
		}
		if !strings.Contains(e.Error(), want[i]) {
			t.Errorf("error %d = %q\nwant it to contain %q", i, e, want[i])
		}
		if sdkWording && !strings.HasPrefix(e.Error(), "Invalid ") {
			t.Errorf("error %d = %q, want the SDK's \"Invalid ...\" wording", i, e)
		}
	}
	if err != nil && !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("joined error is not InvalidArgument: %v", err)
	}
}

// CheckOne fails t unless err is nil when want is empty, and otherwise one
// errcode.InvalidArgument error (a single problem, as a name check gives)
// whose text contains each of want.
func CheckOne(t testing.TB, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("got %v, want no error", err)
		}
		return
	}
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Fatalf("got %v, want an InvalidArgument error", err)
	}
	if n := len(errcode.Split(err)); n != 1 {
		t.Errorf("got %d problems, want one:\n%v", n, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\nwant it to contain %q", err, w)
		}
	}
}
