package aks

import (
	"strings"
	"testing"
)

// FuzzParseResourceID: any string parses or is rejected, never panics; a
// parsed id names non-empty parts that rebuild an id of the same shape.
func FuzzParseResourceID(f *testing.F) {
	f.Add("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c")
	f.Add("/subscriptions//resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/")
	f.Add("")
	f.Add("////////")
	f.Fuzz(func(t *testing.T, id string) {
		s, rg, name, err := ParseResourceID(id)
		if err != nil {
			return
		}
		if s == "" || rg == "" || name == "" || strings.Contains(s+rg+name, "/") {
			t.Fatalf("ParseResourceID(%q) = %q %q %q", id, s, rg, name)
		}
	})
}
