package treetest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	Write(t, dir, map[string]string{
		"a/b.txt": "hello",
		"empty/":  "",
		"link":    "->a/b.txt",
	}, nil)
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b.txt")); err != nil || string(b) != "hello" {
		t.Errorf("a/b.txt = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty/ is not a directory: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "a/b.txt" {
		t.Errorf("link -> %q, %v", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "link")); err != nil || string(b) != "hello" {
		t.Errorf("through the link: %q, %v", b, err)
	}
}
