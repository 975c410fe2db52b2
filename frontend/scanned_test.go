package frontend

import (
	"testing"

	"github.com/aksml/aksml/frontend/internal/wire"
)

// TestWireHeaderNames: the scanners of package wire act on the header
// names the router reads and writes.
func TestWireHeaderNames(t *testing.T) {
	for _, c := range [][2]string{
		{wire.HeaderVersion, HeaderVersion},
		{wire.HeaderVersionAlias, HeaderVersionAlias},
		{wire.HeaderCallerKey, HeaderCallerKey},
		{wire.HeaderRequestID, HeaderRequestID},
		{wire.HeaderServedBy, HeaderServedBy},
	} {
		if c[0] != c[1] {
			t.Errorf("package wire has %q where the router has %q", c[0], c[1])
		}
	}
}
