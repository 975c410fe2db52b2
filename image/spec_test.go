package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/opencontainers/go-digest"
)

const testConda = `name: project_environment
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.10
  - scikit-learn=1.3
  - numpy
  - pip:
      - azureml-defaults
      - inference-schema[numpy-support]==1.5
`

func dg(s string) digest.Digest { return digest.SHA256.FromString(s) }

// baseSpec returns a Spec with every field set.
func baseSpec() *Spec {
	return &Spec{
		Name:                 "sklearn-env",
		Version:              "3",
		BaseImage:            "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20240101",
		DockerSteps:          "RUN echo hello\nRUN echo world",
		CondaYAML:            testConda,
		PipPackages:          []string{"joblib", "pandas==2.1"},
		EnvironmentVariables: map[string]string{"A": "1", "B": "two"},
		EntryScript:          "score.py",
		Source:               dg("source"),
		SourceName:           "my_project",
		ScoreBinary:          dg("binary"),
		ScoreArgs:            []string{"--port", "5001"},
		Models:               []Model{{Name: "iris", Version: 1, Digest: dg("iris1")}, {Name: "wine", Version: 2, Digest: dg("wine2")}},
	}
}

func mustDigest(t *testing.T, s *Spec) digest.Digest {
	t.Helper()
	d, err := s.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return d
}

func TestDigestStableUnderEquivalentChanges(t *testing.T) {
	t.Parallel()
	want := mustDigest(t, baseSpec())
	tests := []struct {
		name   string
		mutate func(*Spec)
	}{
		{"environment name", func(s *Spec) { s.Name = "other-name" }},
		{"environment version", func(s *Spec) { s.Version = "42" }},
		{"CRLF docker steps", func(s *Spec) { s.DockerSteps = "RUN echo hello\r\nRUN echo world\r\n" }},
		{"trailing blanks in steps", func(s *Spec) { s.DockerSteps = "\nRUN echo hello  \nRUN echo world\t\n\n" }},
		{"pip order", func(s *Spec) { s.PipPackages = []string{"pandas==2.1", "joblib"} }},
		{"pip duplicates and spaces", func(s *Spec) { s.PipPackages = []string{" joblib", "pandas==2.1", "joblib "} }},
		{"conda env name", func(s *Spec) { s.CondaYAML = strings.Replace(testConda, "project_environment", "renamed", 1) }},
		{"conda without name", func(s *Spec) { s.CondaYAML = strings.Replace(testConda, "name: project_environment\n", "", 1) }},
		{"conda comments and CRLF", func(s *Spec) {
			s.CondaYAML = "# my env\r\n" + strings.ReplaceAll(testConda, "\n", "\r\n")
		}},
		{"conda dependency order", func(s *Spec) {
			s.CondaYAML = `channels: [conda-forge, defaults]
dependencies:
  - pip: ["inference-schema[numpy-support]==1.5", azureml-defaults]
  - numpy
  - scikit-learn=1.3
  - python=3.10
`
		}},
		{"conda prefix", func(s *Spec) { s.CondaYAML = testConda + "prefix: /home/me/envs/x\n" }},
		{"env var map rebuilt", func(s *Spec) { s.EnvironmentVariables = map[string]string{"B": "two", "A": "1"} }},
		{"models ignored unless baked", func(s *Spec) { s.Models = nil }},
		{"entry script cleaned", func(s *Spec) { s.EntryScript = "./score.py" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := baseSpec()
			tt.mutate(s)
			if got := mustDigest(t, s); got != want {
				a, _ := baseSpec().Canonical()
				b, _ := s.Canonical()
				t.Fatalf("digest changed:\n%s\n%s", a, b)
			}
		})
	}
}

func TestDigestNormalisesBaseImage(t *testing.T) {
	t.Parallel()
	tests := []struct{ a, b string }{
		{"", DefaultBaseImage},
		{"ubuntu", "docker.io/library/ubuntu:latest"},
		{"ubuntu:22.04", "docker.io/library/ubuntu:22.04"},
		{" scratch ", "scratch"},
	}
	for _, tt := range tests {
		a, b := &Spec{BaseImage: tt.a}, &Spec{BaseImage: tt.b}
		if mustDigest(t, a) != mustDigest(t, b) {
			t.Errorf("baseImage %q and %q give different digests", tt.a, tt.b)
		}
	}
}

func TestDigestChangesWithEveryMeaningfulField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Spec)
	}{
		{"base image tag", func(s *Spec) { s.BaseImage = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20240202" }},
		{"base dockerfile instead", func(s *Spec) { s.BaseImage = ""; s.BaseDockerfile = "FROM ubuntu:22.04\nRUN apt-get update" }},
		{"docker step added", func(s *Spec) { s.DockerSteps += "\nRUN echo more" }},
		{"docker steps reordered", func(s *Spec) { s.DockerSteps = "RUN echo world\nRUN echo hello" }},
		{"conda dependency version", func(s *Spec) { s.CondaYAML = strings.Replace(testConda, "python=3.10", "python=3.11", 1) }},
		{"conda pip dependency", func(s *Spec) { s.CondaYAML = strings.Replace(testConda, "==1.5", "==1.6", 1) }},
		{"conda channel order", func(s *Spec) {
			s.CondaYAML = strings.Replace(testConda, "  - conda-forge\n  - defaults\n", "  - defaults\n  - conda-forge\n", 1)
		}},
		{"conda removed", func(s *Spec) { s.CondaYAML = "" }},
		{"user managed", func(s *Spec) { s.CondaYAML = ""; s.UserManaged = true }},
		{"interpreter path", func(s *Spec) { s.InterpreterPath = "/opt/python/bin/python3" }},
		{"pip package added", func(s *Spec) { s.PipPackages = append(s.PipPackages, "scipy") }},
		{"pip version", func(s *Spec) { s.PipPackages = []string{"joblib", "pandas==2.2"} }},
		{"env var value", func(s *Spec) { s.EnvironmentVariables = map[string]string{"A": "1", "B": "three"} }},
		{"env var added", func(s *Spec) { s.EnvironmentVariables = map[string]string{"A": "1", "B": "two", "C": ""} }},
		{"inferencing stack", func(s *Spec) { s.InferencingStackVersion = "latest" }},
		{"entry script", func(s *Spec) { s.EntryScript = "src/score.py" }},
		{"source", func(s *Spec) { s.Source = dg("source2") }},
		{"no source", func(s *Spec) { s.Source = ""; s.SourceName = "" }},
		{"source name", func(s *Spec) { s.SourceName = "other_project" }},
		{"score binary", func(s *Spec) { s.ScoreBinary = dg("binary2") }},
		{"score args", func(s *Spec) { s.ScoreArgs = []string{"--port", "5002"} }},
		{"bake models", func(s *Spec) { s.BakeModels = true }},
		{"bake other model version", func(s *Spec) {
			s.BakeModels = true
			s.Models = []Model{{Name: "iris", Version: 2, Digest: dg("iris1")}, {Name: "wine", Version: 2, Digest: dg("wine2")}}
		}},
		{"bake other model content", func(s *Spec) {
			s.BakeModels = true
			s.Models = []Model{{Name: "iris", Version: 1, Digest: dg("iris1b")}, {Name: "wine", Version: 2, Digest: dg("wine2")}}
		}},
	}
	seen := map[digest.Digest]string{mustDigest(t, baseSpec()): "base"}
	for _, tt := range tests {
		s := baseSpec()
		tt.mutate(s)
		d := mustDigest(t, s)
		if prev, dup := seen[d]; dup {
			t.Errorf("%s: digest equals that of %s", tt.name, prev)
		}
		seen[d] = tt.name
	}
}

func TestBakedModelOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	a, b := baseSpec(), baseSpec()
	a.BakeModels, b.BakeModels = true, true
	b.Models = []Model{b.Models[1], b.Models[0]}
	if mustDigest(t, a) != mustDigest(t, b) {
		t.Fatal("model order changed the digest")
	}
}

func TestEnvironmentDigestIgnoresApplication(t *testing.T) {
	t.Parallel()
	a, b := baseSpec(), baseSpec()
	b.EntryScript, b.Source, b.ScoreBinary, b.ScoreArgs = "other.py", dg("x"), dg("y"), nil
	b.BakeModels = true
	da, _ := a.EnvironmentDigest()
	db, _ := b.EnvironmentDigest()
	if da != db {
		t.Fatal("environment digest depends on the application")
	}
	b.PipPackages = append(b.PipPackages, "scipy")
	if dc, _ := b.EnvironmentDigest(); dc == da {
		t.Fatal("environment digest ignores pip packages")
	}
	if full := mustDigest(t, a); full == da {
		t.Fatal("full digest equals environment digest")
	}
}

func TestRef(t *testing.T) {
	t.Parallel()
	s := baseSpec()
	ref, err := s.Ref()
	if err != nil {
		t.Fatal(err)
	}
	if want := "aksml/env:" + mustDigest(t, s).Encoded(); ref != want || len(ref) != len("aksml/env:")+64 {
		t.Fatalf("Ref = %q, want %q", ref, want)
	}
}

func TestValidateReportsEveryRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Spec)
		want   []string
	}{
		{"base image and dockerfile", func(s *Spec) { s.BaseDockerfile = "FROM x" }, []string{"baseImage", "mutually exclusive"}},
		{"dockerfile without FROM", func(s *Spec) { s.BaseImage = ""; s.BaseDockerfile = "RUN true" }, []string{"baseDockerfile has no FROM"}},
		{"dockerfile escape directive", func(s *Spec) { s.BaseImage = ""; s.BaseDockerfile = "# escape=`\nFROM x" }, []string{"escape directive"}},
		{"bad image ref", func(s *Spec) { s.BaseImage = "Ubuntu:22.04" }, []string{`baseImage "Ubuntu:22.04"`, "lowercase"}},
		{"conda not yaml", func(s *Spec) { s.CondaYAML = "dependencies: [unclosed" }, []string{"condaDependencies is not valid YAML"}},
		{"conda not a mapping", func(s *Spec) { s.CondaYAML = "- numpy" }, []string{"condaDependencies must be a YAML mapping"}},
		{"conda deps not a list", func(s *Spec) { s.CondaYAML = "dependencies: numpy" }, []string{"dependencies must be a list"}},
		{"conda channels not a list", func(s *Spec) { s.CondaYAML = "channels: conda-forge" }, []string{"channels must be a list"}},
		{"conda and user managed", func(s *Spec) { s.UserManaged = true }, []string{"userManagedDependencies is true"}},
		{"relative interpreter", func(s *Spec) { s.InterpreterPath = "bin/python" }, []string{`interpreterPath "bin/python"`}},
		{"empty pip", func(s *Spec) { s.PipPackages = []string{"numpy", " "} }, []string{"pip package 1 is empty"}},
		{"pip newline", func(s *Spec) { s.PipPackages = []string{"numpy\nscipy"} }, []string{"line break"}},
		{"env name", func(s *Spec) { s.EnvironmentVariables = map[string]string{"1BAD": "x"} }, []string{`environmentVariables name "1BAD"`}},
		{"env newline", func(s *Spec) { s.EnvironmentVariables = map[string]string{"A": "x\ny"} }, []string{"environmentVariables A value"}},
		{"inferencing stack", func(s *Spec) { s.InferencingStackVersion = "1.0" }, []string{`inferencingStackVersion "1.0"`}},
		{"entry script outside", func(s *Spec) { s.EntryScript = "../score.py" }, []string{`entryScript "../score.py"`}},
		{"entry script absolute", func(s *Spec) { s.EntryScript = "/score.py" }, []string{`entryScript "/score.py"`}},
		{"bad source digest", func(s *Spec) { s.Source = "sha256:xyz" }, []string{"source digest"}},
		{"source without name", func(s *Spec) { s.SourceName = "" }, []string{"sourceName is required with source"}},
		{"name without source", func(s *Spec) { s.Source = "" }, []string{`sourceName "my_project" is set but no source`}},
		{"source name with slash", func(s *Spec) { s.SourceName = "a/b" }, []string{`sourceName "a/b"`, "one folder name"}},
		{"source name with dollar", func(s *Spec) { s.SourceName = "$HOME" }, []string{`sourceName "$HOME"`, "one folder name"}},
		{"source name dot dot", func(s *Spec) { s.SourceName = ".." }, []string{`sourceName ".."`, "not . or .."}},
		{"source name trailing space", func(s *Spec) { s.SourceName = "src " }, []string{`sourceName "src "`, "trailing spaces"}},
		{"source name too long", func(s *Spec) { s.SourceName = strings.Repeat("a", 256) }, []string{"256 bytes long"}},
		{"source name of the models", func(s *Spec) { s.SourceName = "azureml-models" }, []string{`sourceName "azureml-models"`, "folder of the models"}},
		{"bad binary digest", func(s *Spec) { s.ScoreBinary = "md5:00" }, []string{"scoreBinary digest"}},
		{"score arg newline", func(s *Spec) { s.ScoreArgs = []string{"a\nb"} }, []string{"scoreArgs"}},
		{"bake bad model", func(s *Spec) {
			s.BakeModels = true
			s.Models = []Model{{Name: "-bad", Version: 0, Digest: "x"}}
		}, []string{`model name "-bad"`, "model -bad:0 digest"}},
		{"bake duplicate model", func(s *Spec) {
			s.BakeModels = true
			s.Models = append(s.Models, s.Models[0])
		}, []string{"model iris:1 is listed twice"}},
		{"bake version 0", func(s *Spec) {
			s.BakeModels = true
			s.Models = []Model{{Name: "iris", Version: 0, Digest: dg("x")}}
		}, []string{"version 0 is below 1"}},
		{"bake nothing", func(s *Spec) { s.BakeModels = true; s.Models = nil }, []string{"no models"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := baseSpec()
			tt.mutate(s)
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate accepted the spec")
			}
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, derr := s.Digest(); derr == nil {
				t.Error("Digest of an invalid spec succeeded")
			}
		})
	}
}

func TestValidateJoinsAllProblems(t *testing.T) {
	t.Parallel()
	s := &Spec{BaseImage: "x", BaseDockerfile: "FROM y", InterpreterPath: "rel", InferencingStackVersion: "v2"}
	err := s.Validate()
	for _, w := range []string{"mutually exclusive", "interpreterPath", "inferencingStackVersion"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %q", err, w)
		}
	}
}
