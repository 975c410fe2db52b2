package aml

import (
	"errors"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
)

// TestInferenceConfigV1Fields decodes inferenceconfig.json files with every
// field v1's files carried: null is accepted wherever v1 allowed it, the
// fields aksml does not use are accepted and named by Warnings when they
// hold a value, and a value of the wrong kind is still an error.
func TestInferenceConfigV1Fields(t *testing.T) {
	t.Parallel()
	const allNull = `{
    "entryScript": "score.py", "runtime": null, "condaFile": null, "extraDockerfileSteps": null,
    "sourceDirectory": null, "enableGpu": null, "cudaVersion": null, "baseImage": null,
    "baseImageRegistry": null, "description": null, "schemaFile": null, "dependencies": null,
    "environment": null
}`
	ic, err := ParseInferenceConfig([]byte(allNull))
	if err != nil {
		t.Fatalf("all-null v1 file: %v", err)
	}
	if ic.EntryScript != "score.py" || len(ic.Warnings()) != 0 {
		t.Errorf("decoded %+v, warnings %q", ic, ic.Warnings())
	}
	const sdkEnv = `{
    "entryScript": "score.py", "schemaFile": "schema.json", "dependencies": ["helpers.py"],
    "environment": {
        "name": "env", "version": null, "assetId": null, "r": null,
        "spark": {"repositories": [], "packages": [], "precachePackages": true},
        "databricks": {"mavenLibraries": [], "pypiLibraries": [], "rcranLibraries": [], "jarLibraries": [], "eggLibraries": []},
        "inferencingStackVersion": null,
        "docker": {"enabled": false, "baseImage": "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04", "baseDockerfile": null,
                   "sharedVolumes": true, "shmSize": null, "arguments": [], "buildContext": null,
                   "platform": {"os": "Linux", "architecture": "amd64"},
                   "baseImageRegistry": {"address": null, "username": null, "password": null, "registryIdentity": null}},
        "python": {"userManagedDependencies": false, "interpreterPath": "python", "condaDependenciesFile": null,
                   "baseCondaEnvironment": null,
                   "condaDependencies": {"name": "project_environment", "dependencies": ["python=3.8", {"pip": ["azureml-defaults"]}], "channels": ["anaconda"]}},
        "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
    }
}`
	ic, err = ParseInferenceConfig([]byte(sdkEnv))
	if err != nil {
		t.Fatalf("SDK-saved environment: %v", err)
	}
	w := strings.Join(ic.Warnings(), "\n")
	for _, want := range []string{"schemaFile is accepted but not used", "dependencies is accepted but not used",
		"environment.docker.platform is accepted but not used"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	for _, quiet := range []string{"spark", "databricks", "custom base image"} {
		if strings.Contains(w, quiet) {
			t.Errorf("warnings mention %q (empty sections and Azure ML's own base image say nothing):\n%s", quiet, w)
		}
	}
	for _, tc := range []struct{ json, want string }{
		{`{"schemaFile": 3}`, "schemaFile: expected a string or null, got a number"},
		{`{"dependencies": "a.py"}`, "dependencies: expected an array or null, got a string"},
		{`{"environment": {"spark": []}}`, "environment.spark: expected an object or null, got an array"},
	} {
		_, err := ParseInferenceConfig([]byte(tc.json))
		if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.json, err, tc.want)
		}
	}
}

// TestAzureMLBaseImageIsNotCustom checks that Azure ML's own base images do
// not draw the custom-base-image warning, while other images do.
func TestAzureMLBaseImageIsNotCustom(t *testing.T) {
	t.Parallel()
	for img, custom := range map[string]bool{
		"mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04":             false,
		"MCR.microsoft.com/azureml/base:intelmpi2018.3-ubuntu16.04":      false,
		"mcr.microsoft.com/azureml/curated/sklearn-1.0-ubuntu20.04-py38": false,
		"myregistry.azurecr.io/scoring:1":                                true,
		"mcr.microsoft.com/mirror/docker/library/python:3.11":            true,
	} {
		ic := &InferenceConfig{EntryScript: "score.py", Environment: &Environment{Name: "e", Docker: DockerSection{BaseImage: img},
			Python: PythonSection{UserManagedDependencies: true}}}
		got := strings.Contains(strings.Join(ic.Warnings(), "\n"), "custom base image")
		if got != custom {
			t.Errorf("%s: custom-base-image warning %v, want %v", img, got, custom)
		}
	}
}
