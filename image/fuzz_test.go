package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// FuzzParseIgnore feeds arbitrary ignore files and paths to the parser and
// the matcher: neither may panic, and parsing is independent of line
// endings.
func FuzzParseIgnore(f *testing.F) {
	for _, c := range gitIgnoreCases {
		for name, content := range c.files {
			if strings.HasSuffix(name, "ignore") {
				f.Add([]byte(content), "sub/a.log", false)
			}
		}
	}
	f.Add([]byte("**/\n!**\n[\n\\\n/**/x/**\n*/\n!/\n"), "a/b/c", true)
	f.Add([]byte("a/**/b\n[!a-z]?\n\\ \n"), "a/x/y/b", false)
	f.Fuzz(func(t *testing.T, data []byte, path string, isDir bool) {
		ps := ParseIgnore(data, nil)
		nested := ParseIgnore(data, []string{"sub"})
		crlf := ParseIgnore(bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")), nil)
		parts := strings.Split(path, "/")
		m := gitignore.NewMatcher(ps)
		got := m.Match(parts, isDir)
		_ = gitignore.NewMatcher(nested).Match(append([]string{"sub"}, parts...), isDir)
		if !bytes.Contains(data, []byte("\r")) && gitignore.NewMatcher(crlf).Match(parts, isDir) != got {
			t.Fatalf("CRLF changed the match of %q against %q", path, data)
		}
	})
}

// FuzzPackageIgnoreFile packages a small tree under an arbitrary .gitignore:
// no panic, and the result never holds an excluded directory's children.
func FuzzPackageIgnoreFile(f *testing.F) {
	f.Add([]byte("*.log\n!keep.log\nbuild/\n"))
	f.Add([]byte("/sub\n!sub/x\n"))
	f.Add([]byte("**\n!*/\n!*.py\n"))
	f.Fuzz(func(t *testing.T, gitignore []byte) {
		if len(gitignore) > 4096 {
			return
		}
		dir := t.TempDir()
		for name, content := range map[string]string{"a.log": "", "keep.log": "", "build/x": "", "sub/x": "", "sub/y.py": "", "z.py": ""} {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, ".gitignore"), gitignore, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := PackageSource(context.Background(), dir, nil)
		if err != nil {
			t.Fatalf("PackageSource: %v", err)
		}
		b, err := PackageSource(context.Background(), dir, nil)
		if err != nil || a.Digest != b.Digest {
			t.Fatalf("packaging is not deterministic: %v", err)
		}
	})
}

// FuzzCanonicalConda checks that any conda text either fails with a coded
// error or gives a canonical form that is a fixed point: rendering it to
// YAML and reading it back gives the same digest.
func FuzzCanonicalConda(f *testing.F) {
	f.Add(testConda)
	f.Add("channels: [a, b]\ndependencies: [x, {pip: [z, y]}, 1.5, null, true]\nvariables: {A: 1}\n")
	f.Add("dependencies: [2001-12-14, .inf]\n")
	f.Add("a: &x [*x]\n")
	f.Add("? [complex, key]\n: value\n")
	f.Fuzz(func(t *testing.T, conda string) {
		s := &Spec{BaseImage: "scratch", CondaYAML: conda}
		d, err := s.Digest()
		if err != nil {
			if !utf8.ValidString(err.Error()) && utf8.ValidString(conda) {
				t.Fatalf("invalid UTF-8 in error %q", err)
			}
			return
		}
		c, err := s.canonical()
		if err != nil {
			t.Fatal(err)
		}
		if c.Conda == nil {
			return
		}
		y, err := condaFile(c.Conda)
		if err != nil {
			t.Fatalf("canonical conda cannot be rendered: %v", err)
		}
		again := &Spec{BaseImage: "scratch", CondaYAML: string(y)}
		d2, err := again.Digest()
		if err != nil {
			t.Fatalf("rendered conda %q does not parse: %v", y, err)
		}
		if d2 != d {
			c2, _ := again.Canonical()
			c1, _ := s.Canonical()
			t.Fatalf("canonical form is not a fixed point:\n%s\n%s\n%s", c1, y, c2)
		}
	})
}

// FuzzDockerfile generates Dockerfiles from arbitrary field values: either
// validation refuses them or every line of the result is a single line (no
// value can inject an instruction).
func FuzzDockerfile(f *testing.F) {
	f.Add("scratch", "RUN true", "KEY", `va"l$ue\`, "numpy==1.0", "score.py")
	f.Add("ubuntu:22.04", "", "A", "", "", "")
	f.Fuzz(func(t *testing.T, base, steps, key, value, pip, entry string) {
		s := &Spec{BaseImage: base, DockerSteps: steps, EnvironmentVariables: map[string]string{key: value}, EntryScript: entry}
		if pip != "" {
			s.PipPackages = []string{pip}
		}
		df, err := s.Dockerfile()
		if err != nil {
			return
		}
		want := len(strings.Split(normaliseText(steps), "\n"))
		if normaliseText(steps) == "" {
			want = 0
		}
		// Lines other than the steps are ours: FROM, comment, pip, ENV…, WORKDIR, EXPOSE.
		n := strings.Count(df, "\n")
		ours := 2 + 1 + 2 + 2 // FROM, comment, user ENV, app root ENVs, WORKDIR+EXPOSE
		if entry != "" {
			ours++
		}
		if pip != "" {
			ours += 2 // RUN pip, AKSML_PYTHON
		}
		if n != want+ours {
			t.Fatalf("Dockerfile has %d lines, want %d:\n%s", n, want+ours, df)
		}
	})
}
