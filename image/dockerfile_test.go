package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
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
    AZUREML_SOURCE_DIRECTORY="/var/azureml-app" \
    AZUREML_ENTRY_SCRIPT="score.py" \
    AKSML_PYTHON="/azureml-envs/aksml/bin/python"
COPY source/ /var/azureml-app/
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
	writeTree(t, dir, map[string]string{"score.py": "print(1)\n", "lib/u.py": "", ".gitignore": "*.pyc\n", "x.pyc": ""}, nil)
	src := mustPackage(t, dir, nil)
	modelDir := t.TempDir()
	writeTree(t, modelDir, map[string]string{"model.pkl": "weights"}, nil)
	model := mustPackage(t, modelDir, &PackageOptions{NoIgnoreFiles: true})
	bin := filepath.Join(t.TempDir(), "aksml-score")
	if err := os.WriteFile(bin, []byte("\x7fELF fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	binDigest, err := FileDigest(bin)
	if err != nil {
		t.Fatal(err)
	}
	spec := &Spec{BaseImage: "scratch", CondaYAML: testConda, EntryScript: "score.py", Source: src.Digest, ScoreBinary: binDigest,
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
	writeTree(t, dir, map[string]string{"score.py": "", "other.py": ""}, nil)
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
		{"no source given", &Spec{BaseImage: "scratch", Source: src.Digest}, nil, errcode.InvalidArgument, []string{"no packaged source"}},
		{"source changed", &Spec{BaseImage: "scratch", Source: dg("old")}, &ContextInputs{Source: src}, errcode.FailedPrecondition, []string{"source directory changed"}},
		{"entry script missing", &Spec{BaseImage: "scratch", Source: src.Digest, EntryScript: "main.py"}, &ContextInputs{Source: src}, errcode.InvalidArgument, []string{`entryScript "main.py" is not in the source directory`}},
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
