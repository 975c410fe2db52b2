package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/treetest"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestDockerfileFullSpec(t *testing.T) {
	t.Parallel()
	s := baseSpec()
	s.EnvironmentVariables["Q"] = `say "hi" $HOME \n`
	d := mustDigest(t, s)
	got, err := s.Dockerfile()
	if err != nil {
		t.Fatal(err)
	}
	want := `FROM mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20240101
# aksml scoring image ` + d.String() + `; generated, do not edit
RUN echo hello
RUN echo world
COPY aksml/conda.yaml /azureml-environment-setup/conda.yaml
RUN conda env create -p /azureml-envs/aksml -f /azureml-environment-setup/conda.yaml && conda clean -aqy
ENV PATH=/azureml-envs/aksml/bin:$PATH
RUN ["/azureml-envs/aksml/bin/python","-m","pip","install","--no-cache-dir","joblib","pandas==2.1"]
COPY aksml/aksml-score /usr/local/bin/aksml-score
ENV A="1" \
    B="two" \
    Q="say \"hi\" \$HOME \\n" \
    AML_APP_ROOT="/var/azureml-app" \
    AZUREML_SOURCE_DIRECTORY="/var/azureml-app/my_project" \
    AZUREML_ENTRY_SCRIPT="my_project/score.py" \
    AKSML_PYTHON="/azureml-envs/aksml/bin/python"
COPY ["source/","/var/azureml-app/my_project/"]
WORKDIR /var/azureml-app
EXPOSE 5001
ENTRYPOINT ["/usr/local/bin/aksml-score"]
CMD ["--port","5001"]
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Dockerfile (-want +got):\n%s", diff)
	}
}

func TestDockerfileVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    *Spec
		want    []string
		notWant []string
	}{
		{
			name:    "user managed with interpreter",
			spec:    &Spec{BaseImage: "myimage:1", UserManaged: true, InterpreterPath: "/opt/py/bin/python", PipPackages: []string{"numpy"}},
			want:    []string{"FROM docker.io/library/myimage:1\n", `RUN ["/opt/py/bin/python","-m","pip","install","--no-cache-dir","numpy"]`, `    AKSML_PYTHON="/opt/py/bin/python"`},
			notWant: []string{"conda", "ENTRYPOINT", "COPY source"},
		},
		{
			name:    "user managed without interpreter",
			spec:    &Spec{BaseImage: "myimage:1", UserManaged: true},
			want:    []string{`    AKSML_PYTHON="python3"`},
			notWant: []string{"pip install", "conda"},
		},
		{
			name:    "go handler on scratch",
			spec:    &Spec{BaseImage: "scratch", ScoreBinary: dg("bin")},
			want:    []string{"FROM scratch\n", "COPY aksml/aksml-score /usr/local/bin/aksml-score", `ENTRYPOINT ["/usr/local/bin/aksml-score"]`},
			notWant: []string{"AKSML_PYTHON", "CMD", "RUN", "AZUREML_ENTRY_SCRIPT", "AZUREML_MODEL_DIR"},
		},
		{
			name: "base dockerfile",
			spec: &Spec{BaseDockerfile: "FROM ubuntu:22.04 AS base\r\nRUN apt-get update\r\n", InferencingStackVersion: "latest"},
			want: []string{"FROM ubuntu:22.04 AS base\nRUN apt-get update\n# aksml", `    AZUREML_INFERENCING_STACK_VERSION="latest"`},
		},
		{
			name: "one baked model",
			spec: &Spec{BaseImage: "scratch", BakeModels: true, Models: []Model{{Name: "iris", Version: 3, Digest: dg("m")}}},
			want: []string{"COPY models/ /var/azureml-app/azureml-models/", `    AZUREML_MODEL_DIR="/var/azureml-app/azureml-models/iris/3"`},
		},
		{
			name: "several baked models",
			spec: &Spec{BaseImage: "scratch", BakeModels: true, Models: []Model{{Name: "a", Version: 1, Digest: dg("a")}, {Name: "b", Version: 1, Digest: dg("b")}}},
			want: []string{`    AZUREML_MODEL_DIR="/var/azureml-app/azureml-models"`},
		},
		{
			name:    "models not baked",
			spec:    &Spec{BaseImage: "scratch", Models: []Model{{Name: "a", Version: 1, Digest: dg("a")}}},
			notWant: []string{"models/", "AZUREML_MODEL_DIR"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			df, err := tt.spec.Dockerfile()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(df, w) {
					t.Errorf("Dockerfile lacks %q:\n%s", w, df)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(df, w) {
					t.Errorf("Dockerfile has %q:\n%s", w, df)
				}
			}
		})
	}
}

func TestBaseImages(t *testing.T) {
	t.Parallel()
	got := BaseImages("ARG V=1\nFROM --platform=linux/amd64 golang:1.22 AS build\nRUN go build\nFROM build AS again\nFROM scratch\nFROM alpine:$V\nfrom ubuntu\n")
	want := []string{"docker.io/library/golang:1.22", "scratch", "docker.io/library/ubuntu:latest"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("BaseImages (-want +got):\n%s", diff)
	}
}

// contextEntries lists a build context's entry names and file contents.
func contextEntries(t *testing.T, archive []byte) (names []string, files map[string]string) {
	t.Helper()
	files = map[string]string{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, files
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
}

func TestBuildContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	treetest.Write(t, dir, map[string]string{"score.py": "print(1)\n", "lib/u.py": "", ".gitignore": "*.pyc\n", "x.pyc": ""}, nil)
	src := mustPackage(t, dir, nil)
	modelDir := t.TempDir()
	treetest.Write(t, modelDir, map[string]string{"model.pkl": "weights"}, nil)
	model := mustPackage(t, modelDir, &PackageOptions{NoIgnoreFiles: true})
	bin := filepath.Join(t.TempDir(), "aksml-score")
	if err := os.WriteFile(bin, []byte("\x7fELF fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	binDigest, err := FileDigest(bin)
	if err != nil {
		t.Fatal(err)
	}
	spec := &Spec{BaseImage: "scratch", CondaYAML: testConda, EntryScript: "score.py", Source: src.Digest, SourceName: "src", ScoreBinary: binDigest,
		BakeModels: true, Models: []Model{{Name: "iris", Version: 1, Digest: model.Digest}}}
	in := &ContextInputs{Source: src, ScoreBinary: bin, Models: map[string]*Source{"iris:1": model}}
	bc, err := BuildContext(context.Background(), spec, in)
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDigest(t, spec); bc.Digest != d || bc.Ref != "aksml/env:"+d.Encoded() {
		t.Fatalf("context digest %s ref %s, spec digest %s", bc.Digest, bc.Ref, d)
	}
	names, files := contextEntries(t, bc.Tar)
	want := []string{"Dockerfile", "aksml/conda.yaml", "aksml/aksml-score", "source/.gitignore", "source/lib/", "source/lib/u.py",
		"source/score.py", "models/iris/1/model.pkl"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("context entries (-want +got):\n%s", diff)
	}
	if files["Dockerfile"] != bc.Dockerfile || files["models/iris/1/model.pkl"] != "weights" {
		t.Fatal("context content is wrong")
	}
	// The conda file in the image is the canonical one.
	var conda map[string]any
	if err := yaml.Unmarshal([]byte(files["aksml/conda.yaml"]), &conda); err != nil {
		t.Fatal(err)
	}
	if _, hasName := conda["name"]; hasName || len(conda["dependencies"].([]any)) != 4 {
		t.Fatalf("conda.yaml = %s", files["aksml/conda.yaml"])
	}
	// Same inputs, same bytes.
	again, err := BuildContext(context.Background(), spec, in)
	if err != nil || !bytes.Equal(again.Tar, bc.Tar) {
		t.Fatalf("second context differs (err %v)", err)
	}
}

func TestBuildContextChecksInputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	treetest.Write(t, dir, map[string]string{"score.py": "", "other.py": ""}, nil)
	src := mustPackage(t, dir, nil)
	bin := filepath.Join(t.TempDir(), "aksml-score")
	if err := os.WriteFile(bin, []byte("bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec *Spec
		in   *ContextInputs
		code *errcode.Code
		msg  []string
	}{
		{"no source given", &Spec{BaseImage: "scratch", Source: src.Digest, SourceName: "src"}, nil, errcode.InvalidArgument, []string{"no packaged source"}},
		{"source changed", &Spec{BaseImage: "scratch", Source: dg("old"), SourceName: "src"}, &ContextInputs{Source: src}, errcode.FailedPrecondition, []string{"source directory changed"}},
		{"entry script missing", &Spec{BaseImage: "scratch", Source: src.Digest, SourceName: "src", EntryScript: "main.py"}, &ContextInputs{Source: src}, errcode.InvalidArgument, []string{`entryScript "main.py" is not in the source directory`}},
		{"binary changed and model missing", &Spec{BaseImage: "scratch", ScoreBinary: dg("other"), BakeModels: true, Models: []Model{{Name: "m", Version: 1, Digest: dg("m")}}},
			&ContextInputs{ScoreBinary: bin}, errcode.FailedPrecondition, []string{"scoring binary", "changed", "model m:1 is baked but its files were not given"}},
		{"binary missing", &Spec{BaseImage: "scratch", ScoreBinary: dg("x")}, &ContextInputs{ScoreBinary: bin + ".gone"}, errcode.NotFound, []string{"does not exist"}},
		{"invalid spec", &Spec{BaseImage: "scratch", EntryScript: "../x.py"}, nil, errcode.InvalidArgument, []string{"entryScript"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := BuildContext(context.Background(), tt.spec, tt.in)
			if !errors.Is(err, tt.code) {
				t.Fatalf("error %v, want %v", err, tt.code)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
		})
	}
}

// TestImageLayoutMatchesAzure lays out the files of an image as its
// Dockerfile's COPY, ENV and WORKDIR instructions say and checks Azure ML's
// v1 layout: the working directory is the app root, which holds the source
// directory under its own name (so ./<name>/file opens), and the entry
// script and source directory variables lead to the packaged files.
func TestImageLayoutMatchesAzure(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "my_project")
	treetest.Write(t, dir, map[string]string{"score.py": "open('./my_project/extradata.json')\n", "extradata.json": `{"k": 1}`, "lib/u.py": ""}, nil)
	src := mustPackage(t, dir, nil)
	modelDir := t.TempDir()
	treetest.Write(t, modelDir, map[string]string{"model.pkl": "weights"}, nil)
	model := mustPackage(t, modelDir, &PackageOptions{NoIgnoreFiles: true})
	spec := &Spec{BaseImage: "scratch", EntryScript: "score.py", Source: src.Digest, SourceName: filepath.Base(dir),
		BakeModels: true, Models: []Model{{Name: "iris", Version: 1, Digest: model.Digest}}}
	bc, err := BuildContext(context.Background(), spec, &ContextInputs{Source: src, Models: map[string]*Source{"iris:1": model}})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	env, workdir := applyDockerfile(t, bc, root)
	inImage := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("in the image: %v", err)
		}
		return string(b)
	}

	if workdir != AppRoot || env[EnvAppRoot] != AppRoot {
		t.Fatalf("WORKDIR %q, %s=%q; want both %s", workdir, EnvAppRoot, env[EnvAppRoot], AppRoot)
	}
	// What a score.py opens relative to its working directory.
	if got := read(filepath.Join(inImage(workdir), "my_project", "extradata.json")); got != `{"k": 1}` {
		t.Errorf("./my_project/extradata.json = %q", got)
	}
	// The app root holds the source under its name and the models, nothing
	// laid flat.
	ents, err := os.ReadDir(inImage(AppRoot))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"azureml-models", "my_project"}, names); diff != "" {
		t.Errorf("app root entries (-want +got):\n%s", diff)
	}
	// The variables aksml-score reads: the entry script from the app root,
	// the source directory.
	if got := read(filepath.Join(inImage(AppRoot), filepath.FromSlash(env[EnvEntryScript]))); !strings.Contains(got, "extradata.json") {
		t.Errorf("%s=%q does not lead to score.py (read %q)", EnvEntryScript, env[EnvEntryScript], got)
	}
	if env[EnvSourceDir] != AppRoot+"/my_project" {
		t.Errorf("%s = %q, want %s/my_project", EnvSourceDir, env[EnvSourceDir], AppRoot)
	}
	read(filepath.Join(inImage(env[EnvSourceDir]), "lib", "u.py"))
	if got := read(filepath.Join(inImage(env[EnvModelDir]), "model.pkl")); got != "weights" {
		t.Errorf("%s/model.pkl = %q", env[EnvModelDir], got)
	}
}

// applyDockerfile carries out the COPY, ENV and WORKDIR instructions of a
// generated Dockerfile (the only file-system ones it holds besides FROM,
// RUN and the binary) with the build context, into root, and returns the
// environment and working directory.
func applyDockerfile(t *testing.T, bc *Context, root string) (env map[string]string, workdir string) {
	t.Helper()
	_, files := contextEntries(t, bc.Tar)
	env = map[string]string{}
	lines := strings.Split(bc.Dockerfile, "\n")
	for i := 0; i < len(lines); i++ {
		ln := lines[i]
		for strings.HasSuffix(ln, ` \`) && i+1 < len(lines) {
			i++
			ln = strings.TrimSuffix(ln, `\`) + "\n" + lines[i]
		}
		instr, rest, _ := strings.Cut(ln, " ")
		switch instr {
		case "ENV":
			for _, kv := range strings.Split(rest, "\n") {
				k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kv), `\`)), "=")
				if !ok || !strings.HasPrefix(v, `"`) || !strings.HasSuffix(v, `"`) {
					t.Fatalf("ENV entry %q is not KEY=\"value\"", kv)
				}
				env[k] = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\$`, `$`).Replace(v[1 : len(v)-1])
			}
		case "WORKDIR":
			workdir = rest
		case "COPY":
			var args []string
			if strings.HasPrefix(rest, "[") {
				if err := json.Unmarshal([]byte(rest), &args); err != nil {
					t.Fatalf("COPY %s: %v", rest, err)
				}
			} else {
				args = strings.Fields(rest)
			}
			if len(args) != 2 {
				t.Fatalf("COPY %s: want a source and a destination", rest)
			}
			from, to := args[0], args[1]
			for name, content := range files {
				rel, ok := strings.CutPrefix(name, from)
				if !ok || strings.HasSuffix(name, "/") {
					continue
				}
				dest := to
				if strings.HasSuffix(from, "/") {
					dest = path.Join(to, rel)
				}
				p := filepath.Join(root, filepath.FromSlash(dest))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return env, workdir
}
