package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/treetest"
	"github.com/google/go-cmp/cmp"
)

func mustPackage(t *testing.T, dir string, opts *PackageOptions) *Source {
	t.Helper()
	src, err := PackageSource(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("PackageSource(%s): %v", dir, err)
	}
	return src
}

var sampleTree = map[string]string{
	"score.py":          "def init():\n    pass\n\ndef run(raw):\n    return raw\n",
	"util/helpers.py":   "X = 1\n",
	"util/__init__.py":  "",
	"run.sh":            "#!/bin/sh\necho hi\n",
	"data/labels.json":  `["setosa","versicolor","virginica"]`,
	"deep/a/b/c/d.txt":  "deep",
	"link-to-score":     "->score.py",
	"empty-dir/":        "",
	"util/empty-inner/": "",
}

func TestPackageSourceIsDeterministic(t *testing.T) {
	t.Parallel()
	names := make([]string, 0, len(sampleTree))
	for n := range sampleTree {
		names = append(names, n)
	}
	sort.Strings(names)
	reversed := append([]string(nil), names...)
	sort.Sort(sort.Reverse(sort.StringSlice(reversed)))

	a, b := t.TempDir(), t.TempDir()
	treetest.Write(t, a, sampleTree, names)
	treetest.Write(t, b, sampleTree, reversed)
	// Different mtimes, permissions of group and others, same executable bit.
	if err := os.Chtimes(filepath.Join(b, "score.py"), time.Now().Add(-48*time.Hour), time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(b, "deep", "a"), time.Unix(12345, 0), time.Unix(12345, 0)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(a, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "util", "helpers.py"), 0o600); err != nil {
		t.Fatal(err)
	}
	sa, sb := mustPackage(t, a, nil), mustPackage(t, b, nil)
	if sa.Digest != sb.Digest {
		t.Fatalf("digests differ: %s vs %s", sa.Digest, sb.Digest)
	}
	if !bytes.Equal(sa.Tar(), sb.Tar()) {
		t.Fatal("archives differ")
	}
	wantFiles := []string{"data/labels.json", "deep/a/b/c/d.txt", "link-to-score", "run.sh", "score.py", "util/__init__.py", "util/helpers.py"}
	if diff := cmp.Diff(wantFiles, sa.Files); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}
	// The digest of this tree is fixed: any machine, any checkout.
	const golden = "sha256:575863dc79dc650a0e599b51df0424143207ea3495c057b57349a722f5e2f95a"
	if sa.Digest.String() != golden {
		t.Logf("golden digest changed: %s (update the constant only if the archive format changed on purpose)", sa.Digest)
		t.Fail()
	}

	// Meaningful changes give new digests.
	changes := []struct {
		name string
		do   func(dir string) error
	}{
		{"content", func(d string) error {
			return os.WriteFile(filepath.Join(d, "util", "helpers.py"), []byte("X = 2\n"), 0o644)
		}},
		{"executable bit", func(d string) error { return os.Chmod(filepath.Join(d, "score.py"), 0o755) }},
		{"rename", func(d string) error {
			return os.Rename(filepath.Join(d, "data", "labels.json"), filepath.Join(d, "data", "labels2.json"))
		}},
		{"new file", func(d string) error { return os.WriteFile(filepath.Join(d, "new.txt"), nil, 0o644) }},
		{"symlink target", func(d string) error {
			if err := os.Remove(filepath.Join(d, "link-to-score")); err != nil {
				return err
			}
			return os.Symlink("run.sh", filepath.Join(d, "link-to-score"))
		}},
	}
	seen := map[string]string{sa.Digest.String(): "original"}
	for _, c := range changes {
		d := t.TempDir()
		treetest.Write(t, d, sampleTree, nil)
		if err := os.Chmod(filepath.Join(d, "run.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := c.do(d); err != nil {
			t.Fatal(err)
		}
		got := mustPackage(t, d, nil).Digest.String()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: digest equals that of %s", c.name, prev)
		}
		seen[got] = c.name
	}
}

func TestPackageSourceArchiveHeaders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	treetest.Write(t, dir, sampleTree, nil)
	if err := os.Chmod(filepath.Join(dir, "run.sh"), 0o750); err != nil {
		t.Fatal(err)
	}
	src := mustPackage(t, dir, &PackageOptions{Prefix: "app/src"})
	tr := tar.NewReader(bytes.NewReader(src.Tar()))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v owner %d:%d %q:%q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		want := map[byte]int64{tar.TypeDir: 0o755, tar.TypeReg: 0o644, tar.TypeSymlink: 0o777}[h.Typeflag]
		if h.Name == "app/src/run.sh" {
			want = 0o755
		}
		if h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
		if h.Name == "app/src/link-to-score" && (h.Typeflag != tar.TypeSymlink || h.Linkname != "score.py") {
			t.Errorf("symlink stored as type %c -> %q", h.Typeflag, h.Linkname)
		}
	}
	want := []string{"app/", "app/src/", "app/src/data/", "app/src/data/labels.json", "app/src/deep/", "app/src/deep/a/",
		"app/src/deep/a/b/", "app/src/deep/a/b/c/", "app/src/deep/a/b/c/d.txt", "app/src/link-to-score", "app/src/run.sh",
		"app/src/score.py", "app/src/util/", "app/src/util/__init__.py", "app/src/util/helpers.py"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("entries (-want +got):\n%s", diff)
	}
	if !src.Has("score.py") || src.Has("app/src/score.py") || src.Has("empty-dir") {
		t.Error("Has answers wrongly")
	}
}

// gitIgnoreCases are trees whose packaging must keep exactly the files git
// would track. Each is also checked against git itself when it is installed.
var gitIgnoreCases = []struct {
	name  string
	files map[string]string
	want  []string
	noGit bool // .amlignore cases: git does not read those
}{
	{
		name: "root patterns, negation, directory-only",
		files: map[string]string{
			".gitignore": "# comment\n\n*.log\n!keep.log\nbuild/\n",
			"a.log":      "", "keep.log": "", "sub/b.log": "", "sub/keep.log": "",
			"build/out.bin": "", "sub/build/x": "", "src/build": "a file named build",
			"score.py": "",
		},
		want: []string{".gitignore", "keep.log", "score.py", "src/build", "sub/keep.log"},
	},
	{
		name: "nested gitignore overrides and adds",
		files: map[string]string{
			".gitignore":    "*.tmp\n",
			"important.tmp": "", "x.tmp": "",
			"sub/.gitignore":    "!important.tmp\n*.csv\n",
			"sub/important.tmp": "", "sub/other.tmp": "", "sub/data.csv": "",
			"data.csv":           "",
			"sub/deeper/big.csv": "",
			"sub/deeper/keep.py": "",
		},
		want: []string{".gitignore", "data.csv", "sub/.gitignore", "sub/deeper/keep.py", "sub/important.tmp"},
	},
	{
		name: "anchored patterns and slashes",
		files: map[string]string{
			".gitignore": "/data\ndocs/*.md\nsub/.gitignore-not-this\n",
			"data/x.csv": "", "sub/data/y.csv": "",
			"docs/a.md": "", "docs/deep/b.md": "", "other/docs/c.md": "",
		},
		want: []string{".gitignore", "docs/deep/b.md", "other/docs/c.md", "sub/data/y.csv"},
	},
	{
		name: "double star",
		files: map[string]string{
			".gitignore": "**/secret.txt\nlogs/**\nmodels/**/*.pkl\n",
			"secret.txt": "", "a/b/secret.txt": "", "logs/x/y.txt": "",
			"models/m.pkl": "", "models/v1/m.pkl": "", "models/v1/readme": "",
		},
		want: []string{".gitignore", "models/v1/readme"},
	},
	{
		name: "excluded directory cannot be re-included",
		files: map[string]string{
			".gitignore":   "out/\n!out/keep.txt\n",
			"out/keep.txt": "", "out/drop.txt": "", "in.txt": "",
		},
		want: []string{".gitignore", "in.txt"},
	},
	{
		name: "contents re-included with dir/* pattern",
		files: map[string]string{
			".gitignore":   "out/*\n!out/keep.txt\n",
			"out/keep.txt": "", "out/drop.txt": "",
		},
		want: []string{".gitignore", "out/keep.txt"},
	},
	{
		name: "escapes, trailing spaces, CRLF and BOM",
		files: map[string]string{
			".gitignore": "\xef\xbb\xbf\\#hash\r\n\\!bang\r\nspaced   \r\n",
			"#hash":      "", "!bang": "", "spaced": "", "kept": "",
		},
		want: []string{".gitignore", "kept"},
	},
	{
		name: "git metadata never packaged",
		files: map[string]string{
			".git/config": "[core]", ".git/objects/x": "",
			"sub/.git":    "gitdir: ../.git/modules/sub",
			"sub/file.py": "",
		},
		want:  []string{"sub/file.py"},
		noGit: true, // git itself treats sub/.git as a submodule pointer
	},
	{
		name: "amlignore replaces gitignore in its directory",
		files: map[string]string{
			".amlignore": "*.csv\n",
			".gitignore": "*.py\n",
			"score.py":   "", "data.csv": "",
			"sub/.gitignore": "*.txt\n",
			"sub/notes.txt":  "", "sub/more.csv": "", "sub/code.py": "",
			"other/.amlignore": "!keep.csv\n",
			"other/.gitignore": "*\n",
			"other/keep.csv":   "", "other/x.bin": "",
		},
		want:  []string{".amlignore", ".gitignore", "other/.amlignore", "other/.gitignore", "other/keep.csv", "other/x.bin", "score.py", "sub/.gitignore", "sub/code.py"},
		noGit: true,
	},
}

func TestPackageSourceHonoursIgnoreFiles(t *testing.T) {
	t.Parallel()
	_, gitErr := exec.LookPath("git")
	for _, tt := range gitIgnoreCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			treetest.Write(t, dir, tt.files, nil)
			got := mustPackage(t, dir, nil).Files
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("packaged files (-want +got):\n%s", diff)
			}
			if tt.noGit || gitErr != nil {
				return
			}
			// The same tree as git sees it.
			cmd := exec.Command("git", "-c", "core.excludesFile=", "init", "-q", dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git init: %v\n%s", err, out)
			}
			cmd = exec.Command("git", "-c", "core.excludesFile=", "-c", "core.quotePath=false", "ls-files", "--others", "--exclude-standard", "-z")
			cmd.Dir = dir
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("git ls-files: %v", err)
			}
			var gitFiles []string
			for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
				if f != "" {
					gitFiles = append(gitFiles, f)
				}
			}
			sort.Strings(gitFiles)
			if diff := cmp.Diff(gitFiles, got); diff != "" {
				t.Errorf("packaged files differ from git's (-git +ours):\n%s", diff)
			}
		})
	}
}

func TestPackageSourceOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	treetest.Write(t, dir, map[string]string{
		".gitignore": "*.bin\n", "a.bin": "", "b.py": "", "c.txt": "", "sub/d.txt": "", "sub/keep.txt": "",
	}, nil)
	got := mustPackage(t, dir, &PackageOptions{Exclude: []string{"*.txt", "!keep.txt"}}).Files
	if diff := cmp.Diff([]string{".gitignore", "b.py", "sub/keep.txt"}, got); diff != "" {
		t.Errorf("Exclude (-want +got):\n%s", diff)
	}
	got = mustPackage(t, dir, &PackageOptions{NoIgnoreFiles: true}).Files
	if diff := cmp.Diff([]string{".gitignore", "a.bin", "b.py", "c.txt", "sub/d.txt", "sub/keep.txt"}, got); diff != "" {
		t.Errorf("NoIgnoreFiles (-want +got):\n%s", diff)
	}
}

func TestPackageSourceErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	treetest.Write(t, dir, map[string]string{"big.bin": strings.Repeat("x", 2000), "f.txt": "x"}, nil)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		dir  string
		opts *PackageOptions
		code *errcode.Code
		msg  string
	}{
		{"missing", context.Background(), filepath.Join(dir, "nope"), nil, errcode.NotFound, "does not exist"},
		{"not a directory", context.Background(), filepath.Join(dir, "f.txt"), nil, errcode.InvalidArgument, "is not a directory"},
		{"too big", context.Background(), dir, &PackageOptions{MaxBytes: 1000}, errcode.ResourceExhausted, "more than 1000 bytes"},
		{"bad prefix", context.Background(), dir, &PackageOptions{Prefix: "../up"}, errcode.InvalidArgument, "prefix"},
		{"cancelled", cancelled, dir, nil, errcode.Unavailable, "canceled"},
	}
	for _, tt := range tests {
		_, err := PackageSource(tt.ctx, tt.dir, tt.opts)
		if !errors.Is(err, tt.code) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: error %v, want %v mentioning %q", tt.name, err, tt.code, tt.msg)
		}
	}
}

func TestFileDigest(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(p, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d, err := FileDigest(p); err != nil || d != dg("binary") {
		t.Fatalf("FileDigest = %s, %v", d, err)
	}
	if _, err := FileDigest(p + "x"); !errors.Is(err, errcode.NotFound) {
		t.Fatalf("missing file: %v", err)
	}
}
