package aml

import (
	"errors"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var icSeeds = []string{
	`{"entryScript": "score.py", "sourceDirectory": null}`,
	`{"entryScript": "score.py", "environment": {"docker": {"arguments": [], "baseDockerfile": null, "baseImage": "mcr.microsoft.com/azureml/base:intelmpi2018.3-ubuntu16.04", "enabled": false, "sharedVolumes": true, "shmSize": null}, "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}, "name": "my-deploy-env", "python": {"baseCondaEnvironment": null, "condaDependencies": {"channels": ["conda-forge"], "dependencies": ["python=3.6.2", {"pip": ["azureml-defaults", "scikit-learn==0.22.1"]}], "name": "project_environment"}, "condaDependenciesFile": null, "interpreterPath": "python", "userManagedDependencies": false}, "version": "1"}}`,
	`{"entryScript": "score.py", "runtime": "python", "condaFile": "infenv.yml", "extraDockerfileSteps": null, "sourceDirectory": null, "enableGpu": false, "baseImage": "mcr.microsoft.com/azureml/o16n-sample-user-base/ubuntu-miniconda", "baseImageRegistry": "mcr.microsoft.com"}`,
	`{"extraDockerFileSteps": "s", "cudaVersion": 10.0, "enableGpu": true, "baseImageRegistry": {"address": "r", "username": "u", "password": "p"}, "description": "d"}`,
	`{"environment": {"version": 3, "inferencingStackVersion": "latest", "docker": {"baseImageRegistry": "x"}, "python": {"userManagedDependencies": true, "interpreterPath": "/usr/bin/python3"}}}`,
	`{"environment": {"python": {"condaDependencies": {"dependencies": [{"pip": []}, {"pip": null}, "a"]}}}}`,
	`{"EntryScript": 1, "environment": [], "x": {}}`,
	`[]`, `null`, `{`, `"s"`, `{"environment": {"version": "-1"}}`,
}

// FuzzParseInferenceConfig: no input panics; whatever decodes encodes and
// decodes back to the same value; Validate never panics.
func FuzzParseInferenceConfig(f *testing.F) {
	for _, s := range icSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ic, err := ParseInferenceConfig(data)
		if err != nil {
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("error without InvalidArgument: %v", err)
			}
			return
		}
		_ = ic.Validate()
		out, err := ic.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a decoded config: %v", err)
		}
		back, err := ParseInferenceConfig(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if diff := cmp.Diff(ic, back, cmpopts.IgnoreFields(InferenceConfig{}, "Handler")); diff != "" {
			t.Fatalf("round trip of %q via %s (-first +second):\n%s", data, out, diff)
		}
	})
}

var condaSeeds = []string{
	"name: project_environment\ndependencies:\n- python=3.6.2\n- pip:\n  - azureml-defaults~=1.27.0\n  - inference-schema[numpy-support]\n- numpy\nchannels:\n- anaconda\n- conda-forge\n",
	"name: x\nprefix: /opt/conda/envs/x\nchannels: [defaults]\ndependencies: [python=3.8, {pip: [flask]}]\n",
	"dependencies:\n- 3.8\n- true\n- pip:\n",
	"a: &a [x]\nchannels: *a\n",
	"variables: {A: b}\n",
	"- x\n", "", "~", "name: [", "dependencies: [[a]]\n", "name: 'a'\nname: b\n",
}

// FuzzParseCondaDependencies: no input panics; whatever parses renders to
// YAML that parses back to the same value.
func FuzzParseCondaDependencies(f *testing.F) {
	for _, s := range condaSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCondaDependencies(data)
		if err != nil {
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("error without InvalidArgument: %v", err)
			}
			return
		}
		_ = c.validate("")
		out := c.YAML()
		back, err := ParseCondaDependencies(out)
		if err != nil {
			t.Fatalf("re-parse of\n%s: %v", out, err)
		}
		if diff := cmp.Diff(c, back); diff != "" {
			t.Fatalf("round trip of %q via\n%s(-first +second):\n%s", data, out, diff)
		}
	})
}
