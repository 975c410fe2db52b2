package symbols_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/aksml/aksml/internal/gointerp/symbols/gen/extract"
)

// TestSymbolsUpToDate regenerates every symbol file and compares it with
// the committed one: a change to aksml's exported API (or to the chosen
// packages) needs `go generate ./internal/gointerp/symbols`.
func TestSymbolsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerating the symbol tables runs go list -export")
	}
	files, err := extract.All()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v; run go generate ./internal/gointerp/symbols", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: the package's exported API changed; run go generate ./internal/gointerp/symbols", name)
		}
	}
}
