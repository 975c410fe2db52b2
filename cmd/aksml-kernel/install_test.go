package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallWritesKernelspec(t *testing.T) {
	prefix := t.TempDir()
	if err := run([]string{"install", "--prefix", prefix}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(prefix, "share", "jupyter", "kernels", "aksml-go", "kernel.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec kernelSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	if len(spec.Argv) != 2 || spec.Argv[0] != self || spec.Argv[1] != "{connection_file}" ||
		spec.Language != "go" || spec.InterruptMode != "message" {
		t.Errorf("kernel.json = %s", data)
	}

	t.Setenv("JUPYTER_DATA_DIR", filepath.Join(prefix, "user"))
	if err := run([]string{"install", "--user", "--name", "other"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(prefix, "user", "kernels", "other", "kernel.json")); err != nil {
		t.Error(err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"install", "--user", "--prefix", prefix}, "exclude each other"},
		{[]string{"install", "--prefix", prefix, "--name", "../x"}, "plain directory name"},
		{[]string{"install", "extra"}, "unexpected argument"},
		{nil, "usage"},
		{[]string{filepath.Join(prefix, "missing.json")}, "no such file"},
	} {
		err := run(c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want an error with %q", c.args, err, c.want)
		}
	}
}
