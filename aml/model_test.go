package aml

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
)

func TestRegisterModelValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"model.pkl":          "weights",
		"empty/":             "",
		"withdirlink/a.txt":  "a",
		"target/b.txt":       "b",
		"withfifo/model.bin": "m",
	})
	if err := os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "withdirlink", "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "withfifo", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "model.pkl")

	tests := []struct {
		rule string
		name string
		path string
		opts *RegisterModelOptions
		want []string // substrings; nil means success
	}{
		{"model_name must not be empty", "", file, nil, []string{`model_name ""`}},
		{"model_name starts with a letter or digit", "-m", file, nil, []string{`model_name "-m"`}},
		{"model_name has only letters, digits, - . _", "my model", file, nil, []string{`model_name "my model" does not match`}},
		{"model_name is at most 255 characters", strings.Repeat("m", 256), file, nil, []string{"does not match"}},
		{"model_framework is a known framework", "m", file, &RegisterModelOptions{Framework: "Caffe"}, []string{`model_framework "Caffe" is not one of`}},
		{"model_framework_version needs model_framework", "m", file, &RegisterModelOptions{FrameworkVersion: "1.0"}, []string{`model_framework_version "1.0" is given without model_framework`}},
		{"tag keys are not empty", "m", file, &RegisterModelOptions{Tags: map[string]string{"": "x"}}, []string{"tags has an empty key"}},
		{"property keys are not empty", "m", file, &RegisterModelOptions{Properties: map[string]string{"": "x"}}, []string{"properties has an empty key"}},
		{"model_path must be given", "m", "", nil, []string{"model_path is empty"}},
		{"model_path must exist", "m", filepath.Join(dir, "nope"), nil, []string{"does not exist"}},
		{"a directory model has files", "m", filepath.Join(dir, "empty"), nil, []string{"is a directory with no files"}},
		{"no symbolic links to directories", "m", filepath.Join(dir, "withdirlink"), nil, []string{"withdirlink/link is a symbolic link to a directory"}},
		{"only regular files", "m", filepath.Join(dir, "withfifo"), nil, []string{"withfifo/pipe is not a regular file"}},
		// Accepted edge cases.
		{"255 characters are fine", strings.Repeat("m", 255), file, nil, nil},
		{"dots, dashes and underscores are fine", "9a.b-c_d", file, nil, nil},
		{"framework matches case-insensitively", "m", file, &RegisterModelOptions{Framework: "onnx", FrameworkVersion: "1.6"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			m, err := ws.RegisterModel(ctx, tt.name, tt.path, tt.opts)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("RegisterModel: %v", err)
				}
				return
			}
			if m != nil {
				t.Errorf("got a model despite the error")
			}
			wantErr(t, err, errcode.InvalidArgument, tt.want...)
		})
	}

	t.Run("every problem at once", func(t *testing.T) {
		_, err := ws.RegisterModel(ctx, "bad name", "", &RegisterModelOptions{
			FrameworkVersion: "2", Tags: map[string]string{"": ""}})
		wantErr(t, err, errcode.InvalidArgument, "model_name", "model_framework_version", "tags", "model_path")
		if n := joinedLen(err); n != 4 {
			t.Errorf("got %d errors, want 4: %v", n, err)
		}
	})
	if m, err := ws.ModelVersion(ctx, "m", 1); err != nil || m.Framework != FrameworkOnnx {
		t.Errorf("framework stored as %q (%v), want canonical Onnx", m.Framework, err)
	}
}

func TestParseModelID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id      string
		name    string
		version int
		want    string // error substring
	}{
		{id: "m:1", name: "m", version: 1},
		{id: "my.model-x_y:42", name: "my.model-x_y", version: 42},
		{id: "m", want: "not of the form name:version"},
		{id: ":1", want: `name ""`},
		{id: "m:", want: `version "" is not a positive integer`},
		{id: "m:0", want: `version "0" is not a positive integer`},
		{id: "m:-1", want: "not a positive integer"},
		{id: "m:+1", want: "not a positive integer"},
		{id: "m:x", want: "not a positive integer"},
		{id: "a b:1", want: `name "a b" does not match`},
	}
	for _, tt := range tests {
		name, v, err := ParseModelID(tt.id)
		if tt.want != "" {
			wantErr(t, err, errcode.InvalidArgument, tt.want)
			continue
		}
		if err != nil || name != tt.name || v != tt.version {
			t.Errorf("ParseModelID(%q) = %q, %d, %v", tt.id, name, v, err)
		}
	}
}

func TestRegisterAndGetModels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, clk := newWS(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"model.pkl":              "pickle bytes",
		"bert/config.json":       `{"layers": 12}`,
		"bert/weights/part1.bin": "AAAA",
		"bert/weights/part2.bin": "AAAA", // same content as part1
		"bert2/config.json":      `{"layers": 12}`,
	})
	if err := os.Symlink(filepath.Join(src, "model.pkl"), filepath.Join(src, "bert2", "linked.pkl")); err != nil {
		t.Fatal(err)
	}

	m1, err := ws.RegisterModel(ctx, "sk", filepath.Join(src, "model.pkl"), &RegisterModelOptions{
		Tags:        map[string]string{"area": "iris", "stage": "dev"},
		Properties:  map[string]string{"accuracy": "0.97"},
		Description: "iris classifier",
		Framework:   FrameworkScikitLearn, FrameworkVersion: "1.0.2",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Model{
		Name: "sk", Version: 1, Root: "model.pkl", Size: 12,
		Digest: modelDigest(false, []ModelFile{{Path: "model.pkl", Digest: digest.FromString("pickle bytes")}}),
		Files:  []ModelFile{{Path: "model.pkl", Size: 12, Digest: digest.FromString("pickle bytes")}},
		Tags:   map[string]string{"area": "iris", "stage": "dev"}, Properties: map[string]string{"accuracy": "0.97"},
		Description: "iris classifier", Framework: FrameworkScikitLearn, FrameworkVersion: "1.0.2",
		CreatedTime: t0,
	}
	if diff := cmp.Diff(want, m1); diff != "" {
		t.Fatalf("RegisterModel (-want +got):\n%s", diff)
	}
	if m1.ID() != "sk:1" {
		t.Errorf("ID() = %q", m1.ID())
	}

	clk.SetTime(t0.Add(time.Hour))
	m2, err := ws.RegisterModel(ctx, "sk", filepath.Join(src, "model.pkl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Version != 2 || !m2.CreatedTime.Equal(t0.Add(time.Hour)) || m2.Framework != FrameworkCustom || m2.Digest != m1.Digest {
		t.Errorf("second version = %+v", m2)
	}

	bert, err := ws.RegisterModel(ctx, "bert", filepath.Join(src, "bert"), &RegisterModelOptions{Framework: FrameworkPyTorch})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []ModelFile{
		{Path: "bert/config.json", Size: 14, Digest: digest.FromString(`{"layers": 12}`)},
		{Path: "bert/weights/part1.bin", Size: 4, Digest: digest.FromString("AAAA")},
		{Path: "bert/weights/part2.bin", Size: 4, Digest: digest.FromString("AAAA")},
	}
	if diff := cmp.Diff(wantFiles, bert.Files); diff != "" || !bert.IsDir || bert.Root != "bert" || bert.Size != 22 {
		t.Errorf("directory model %+v; files diff:\n%s", bert, diff)
	}
	bert2, err := ws.RegisterModel(ctx, "bert2", filepath.Join(src, "bert2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bert2.Files) != 2 || bert2.Files[1].Path != "bert2/linked.pkl" || bert2.Files[1].Digest != m1.Files[0].Digest {
		t.Errorf("symlinked file not followed: %+v", bert2.Files)
	}

	// Equal content is stored once: model.pkl, config.json and AAAA.
	blobs := 0
	filepath.WalkDir(filepath.Join(ws.Dir(), "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			blobs++
		}
		return nil
	})
	if blobs != 3 {
		t.Errorf("blob store holds %d files, want 3", blobs)
	}

	latest, err := ws.Model(ctx, "sk")
	if err != nil || latest.Version != 2 {
		t.Fatalf("Model(sk) = %v, %v; want version 2", latest, err)
	}
	got1, err := ws.ModelVersion(ctx, "sk", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m1, got1); diff != "" {
		t.Errorf("ModelVersion(sk, 1) (-registered +read):\n%s", diff)
	}
	if byID, err := ws.ModelByID(ctx, "bert:1"); err != nil || byID.Digest != bert.Digest {
		t.Errorf("ModelByID = %v, %v", byID, err)
	}
	_, err = ws.Model(ctx, "nope")
	wantErr(t, err, errcode.NotFound, `model "nope" is not registered`)
	_, err = ws.ModelVersion(ctx, "sk", 3)
	wantErr(t, err, errcode.NotFound, "sk:3")

	// Tags change, properties do not.
	upd, err := ws.UpdateModelTags(ctx, "sk:1", map[string]string{"stage": "prod", "owner": "ml"}, []string{"area"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"stage": "prod", "owner": "ml"}, upd.Tags); diff != "" {
		t.Errorf("tags after update:\n%s", diff)
	}
	if again, _ := ws.ModelVersion(ctx, "sk", 1); !cmp.Equal(again.Tags, upd.Tags) || !cmp.Equal(again.Properties, m1.Properties) {
		t.Errorf("stored after tag update: %+v", again)
	}
	_, err = ws.UpdateModelTags(ctx, "sk:1", map[string]string{"a": "1", "": "2"}, []string{"a"})
	wantErr(t, err, errcode.InvalidArgument, `tag "a" is both set and removed`, "tags has an empty key")
	_, err = ws.UpdateModelTags(ctx, "sk:9", nil, []string{"a"})
	wantErr(t, err, errcode.NotFound)

	if err := ws.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestListModels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "x"})
	f := filepath.Join(src, "f")
	reg := func(name string, opts *RegisterModelOptions) {
		if _, err := ws.RegisterModel(ctx, name, f, opts); err != nil {
			t.Fatal(err)
		}
	}
	reg("b", &RegisterModelOptions{Tags: map[string]string{"team": "x"}, Framework: FrameworkOnnx})
	reg("a", &RegisterModelOptions{Tags: map[string]string{"team": "y"}, Properties: map[string]string{"acc": "0.9"}})
	reg("a", &RegisterModelOptions{Tags: map[string]string{"team": "x", "prod": ""}})
	reg("b", nil)

	ids := func(ms []*Model) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID())
		}
		return out
	}
	tests := []struct {
		opts *ListModelsOptions
		want []string
	}{
		{nil, []string{"a:1", "a:2", "b:1", "b:2"}},
		{&ListModelsOptions{Name: "b"}, []string{"b:1", "b:2"}},
		{&ListModelsOptions{Tags: []string{"team=x"}}, []string{"a:2", "b:1"}},
		{&ListModelsOptions{Tags: []string{"team"}}, []string{"a:1", "a:2", "b:1"}},
		{&ListModelsOptions{Tags: []string{"team=x", "prod"}}, []string{"a:2"}},
		{&ListModelsOptions{Tags: []string{"prod="}}, []string{"a:2"}},
		{&ListModelsOptions{Properties: []string{"acc=0.9"}}, []string{"a:1"}},
		{&ListModelsOptions{Properties: []string{"acc=0.8"}}, nil},
		{&ListModelsOptions{Framework: "ONNX"}, []string{"b:1"}},
		{&ListModelsOptions{Latest: true}, []string{"a:2", "b:2"}},
		{&ListModelsOptions{Latest: true, Tags: []string{"team"}}, []string{"a:2", "b:1"}},
	}
	for _, tt := range tests {
		got, err := ws.ListModels(ctx, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("ListModels(%+v) (-want +got):\n%s", tt.opts, diff)
		}
	}
	_, err := ws.ListModels(ctx, &ListModelsOptions{Framework: "Caffe"})
	wantErr(t, err, errcode.InvalidArgument, "model_framework")
}

func TestDownloadModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"model.pkl": "P", "dir/a.txt": "A", "dir/sub/b.txt": "B"})
	if _, err := ws.RegisterModel(ctx, "file", filepath.Join(src, "model.pkl"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.RegisterModel(ctx, "tree", filepath.Join(src, "dir"), nil); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, link := range []bool{false, true} {
		t.Run(fmt.Sprintf("link=%v", link), func(t *testing.T) {
			out := t.TempDir()
			target := filepath.Join(out, "azureml-models", "file", "1")
			p, err := ws.DownloadModel(ctx, "file:1", target, &DownloadOptions{Link: link})
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(target, "model.pkl") || read(p) != "P" {
				t.Errorf("file model at %s", p)
			}
			p, err = ws.DownloadModel(ctx, "tree:1", out, &DownloadOptions{Link: link})
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(out, "dir") || read(filepath.Join(p, "a.txt")) != "A" || read(filepath.Join(p, "sub", "b.txt")) != "B" {
				t.Errorf("directory model at %s", p)
			}
			blob, _ := os.Stat(filepath.Join(ws.Dir(), "blobs", "sha256", digest.FromString("A").Encoded()[:2], digest.FromString("A").Encoded()))
			got, _ := os.Stat(filepath.Join(p, "a.txt"))
			if os.SameFile(blob, got) != link {
				t.Errorf("hard-linked = %v, want %v", os.SameFile(blob, got), link)
			}
			_, err = ws.DownloadModel(ctx, "tree:1", out, &DownloadOptions{Link: link})
			wantErr(t, err, errcode.AlreadyExists, "Overwrite")
			os.WriteFile(filepath.Join(p, "stray"), nil, 0o644)
			if _, err := ws.DownloadModel(ctx, "tree:1", out, &DownloadOptions{Link: link, Overwrite: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(p, "stray")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Overwrite kept a stray file: %v", err)
			}
		})
	}
	t.Run("AZUREML_MODEL_DIR layout", func(t *testing.T) {
		root := t.TempDir()
		one, err := ws.MaterializeModels(ctx, []string{"tree:1", "tree:1"}, root, &DownloadOptions{Link: true})
		if err != nil || one != filepath.Join(root, "azureml-models", "tree", "1") || read(filepath.Join(one, "dir", "a.txt")) != "A" {
			t.Fatalf("one model: %s, %v", one, err)
		}
		root2 := t.TempDir()
		many, err := ws.MaterializeModels(ctx, []string{"file:1", "tree:1"}, root2, nil)
		if err != nil || many != filepath.Join(root2, "azureml-models") ||
			read(filepath.Join(many, "file", "1", "model.pkl")) != "P" || read(filepath.Join(many, "tree", "1", "dir", "sub", "b.txt")) != "B" {
			t.Fatalf("two models: %s, %v", many, err)
		}
		_, err = ws.MaterializeModels(ctx, []string{"file:1", "file:7", "bad"}, t.TempDir(), nil)
		wantErr(t, err, errcode.NotFound, "file:7", `"bad"`)
		_, err = ws.MaterializeModels(ctx, nil, t.TempDir(), nil)
		wantErr(t, err, errcode.InvalidArgument)
	})
	_, err := ws.DownloadModel(ctx, "tree:2", t.TempDir(), nil)
	wantErr(t, err, errcode.NotFound)
	if _, err := ws.BlobPath(digest.FromString("A")); err != nil {
		t.Errorf("BlobPath: %v", err)
	}
	_, err = ws.BlobPath(digest.FromString("never stored"))
	wantErr(t, err, errcode.NotFound)
	_, err = ws.BlobPath("sha256:xyz")
	wantErr(t, err, errcode.InvalidArgument)
}

func TestGCAndCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a": "shared", "b/x": "shared", "b/y": "only b"})
	if _, err := ws.RegisterModel(ctx, "a", filepath.Join(src, "a"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.RegisterModel(ctx, "b", filepath.Join(src, "b"), nil); err != nil {
		t.Fatal(err)
	}
	if res, err := ws.GC(ctx); err != nil || res.BlobsRemoved != 0 {
		t.Fatalf("GC with everything referenced = %+v, %v", res, err)
	}
	if err := ws.DeleteModel(ctx, "b:1"); err != nil {
		t.Fatal(err)
	}
	res, err := ws.GC(ctx)
	if err != nil || res.BlobsRemoved != 1 || res.BytesFreed != int64(len("only b")) {
		t.Fatalf("GC after delete = %+v, %v; want the one blob only b used", res, err)
	}
	if err := ws.Check(ctx); err != nil {
		t.Fatalf("Check after GC: %v", err)
	}
	// Corrupt the shared blob: Check names the model and file.
	p, _ := ws.BlobPath(digest.FromString("shared"))
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("tampered"), 0o644)
	wantErr(t, ws.Check(ctx), errcode.Internal, "model a:1 file a", "want "+string(digest.FromString("shared")))
}

// Eight goroutines registering the same name get versions 1..8, none
// skipped or duplicated, each with its own content.
func TestConcurrentRegisterSameName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	src := t.TempDir()
	const n = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions []int
		byVer    = map[int]digest.Digest{}
	)
	for i := range n {
		p := filepath.Join(src, fmt.Sprintf("m%d", i))
		writeFiles(t, src, map[string]string{fmt.Sprintf("m%d", i): fmt.Sprintf("content %d", i)})
		wg.Go(func() {
			m, err := ws.RegisterModel(ctx, "same", p, nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			versions = append(versions, m.Version)
			byVer[m.Version] = m.Files[0].Digest
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(versions)
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5, 6, 7, 8}, versions); diff != "" {
		t.Fatalf("versions (-want +got):\n%s", diff)
	}
	for v, d := range byVer {
		m, err := ws.ModelVersion(ctx, "same", v)
		if err != nil || m.Files[0].Digest != d {
			t.Errorf("version %d = %v, %v; want digest %s", v, m, err, d)
		}
	}
	if err := ws.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterCanceled(t *testing.T) {
	t.Parallel()
	ws, _ := newWS(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"m": "x"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ws.RegisterModel(ctx, "m", filepath.Join(src, "m"), nil)
	wantErr(t, err, errcode.Unavailable, "canceled")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not wrap context.Canceled", err)
	}
	if _, err := ws.Model(context.Background(), "m"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("canceled registration left a version: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(ws.Dir(), "tmp"))
	if len(entries) != 0 {
		t.Errorf("staging area left behind: %v", entries)
	}
}
