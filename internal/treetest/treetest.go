// Package treetest writes directory trees for tests: regular files, empty
// directories and symlinks, in a chosen order (creation order matters to
// tests of directory walks).
package treetest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Write creates files below dir: path (slash-separated) → content. A path
// ending in "/" makes an empty directory; content "->target" makes a
// symlink to target. Entries are created in order, or sorted by path when
// order is nil. Any failure fails the test.
func Write(t testing.TB, dir string, files map[string]string, order []string) {
	t.Helper()
	if order == nil {
		for name := range files {
			order = append(order, name)
		}
		sort.Strings(order)
	}
	for _, name := range order {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		content := files[name]
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
