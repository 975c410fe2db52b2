package aml_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/errcode"
	testingclock "k8s.io/utils/clock/testing"
)

// Register a model file twice, read the latest version back, list by tag
// and download it in the AZUREML_MODEL_DIR layout.
func ExampleWorkspace_RegisterModel() {
	ctx := context.Background()
	tmp, _ := os.MkdirTemp("", "aml-example")
	defer os.RemoveAll(tmp)

	clock := testingclock.NewFakePassiveClock(time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
	ws, err := aml.Open(ctx, filepath.Join(tmp, "workspace"), &aml.OpenOptions{Clock: clock})
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Close()

	model := filepath.Join(tmp, "model.pkl")
	os.WriteFile(model, []byte("pretend these are weights"), 0o644)
	for _, stage := range []string{"dev", "prod"} {
		m, err := ws.RegisterModel(ctx, "sklearn-iris", model, &aml.RegisterModelOptions{
			Tags:       map[string]string{"stage": stage},
			Properties: map[string]string{"accuracy": "0.97"},
			Framework:  aml.FrameworkScikitLearn, FrameworkVersion: "1.0.2",
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("registered", m.ID(), m.Framework, m.Size, "bytes at", m.CreatedTime.Format(time.RFC3339))
	}

	latest, _ := ws.Model(ctx, "sklearn-iris")
	fmt.Println("latest:", latest.ID(), latest.Tags["stage"], latest.Files[0].Path)

	dev, _ := ws.ListModels(ctx, &aml.ListModelsOptions{Tags: []string{"stage=dev"}})
	fmt.Println("tagged dev:", dev[0].ID())

	p, _ := ws.DownloadModel(ctx, latest.ID(), filepath.Join(tmp, "azureml-models", "sklearn-iris", "2"), &aml.DownloadOptions{Link: true})
	rel, _ := filepath.Rel(tmp, p)
	fmt.Println("downloaded to", filepath.ToSlash(rel))

	_, err = ws.RegisterModel(ctx, "iris model", model, &aml.RegisterModelOptions{FrameworkVersion: "1.0"})
	fmt.Println(errors.Is(err, errcode.InvalidArgument))
	fmt.Println(err)
	// Output:
	// registered sklearn-iris:1 ScikitLearn 25 bytes at 2024-03-01T12:00:00Z
	// registered sklearn-iris:2 ScikitLearn 25 bytes at 2024-03-01T12:00:00Z
	// latest: sklearn-iris:2 prod model.pkl
	// tagged dev: sklearn-iris:1
	// downloaded to azureml-models/sklearn-iris/2/model.pkl
	// true
	// model_name "iris model" does not match ^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$ (1-255 letters, digits, '-', '.', '_', starting with a letter or digit)
	// model_framework_version "1.0" is given without model_framework
}

// Read an inferenceconfig.json as `az ml model deploy --ic` does, validate
// it, and write it back out.
func ExampleLoadInferenceConfig() {
	tmp, _ := os.MkdirTemp("", "aml-example")
	defer os.RemoveAll(tmp)
	os.MkdirAll(filepath.Join(tmp, "src"), 0o755)
	os.WriteFile(filepath.Join(tmp, "src", "score.py"), []byte("def init(): pass\ndef run(raw_data): return raw_data\n"), 0o644)
	os.WriteFile(filepath.Join(tmp, "inferenceconfig.json"), []byte(`{
  "entryScript": "score.py",
  "sourceDirectory": "src",
  "environment": {
    "name": "my-deploy-env",
    "version": "1",
    "python": {
      "condaDependencies": {
        "channels": ["conda-forge"],
        "dependencies": ["python=3.8", {"pip": ["azureml-defaults", "scikit-learn==1.0.2"]}]
      }
    }
  }
}`), 0o644)

	ic, err := aml.LoadInferenceConfig(filepath.Join(tmp, "inferenceconfig.json"))
	if err != nil {
		log.Fatal(err)
	}
	if err := ic.Validate(); err != nil {
		log.Fatal(err)
	}
	rel, _ := filepath.Rel(tmp, ic.EntryScriptPath())
	fmt.Println("entry script:", filepath.ToSlash(rel))
	fmt.Println("environment:", ic.Environment, ic.Environment.Python.CondaDependencies.PipPackages)
	fmt.Printf("conda file:\n%s", ic.Environment.Python.CondaDependencies.YAML())

	// Saved beside the original, paths are relative to the file again.
	if err := aml.SaveInferenceConfig(filepath.Join(tmp, "copy.json"), ic); err != nil {
		log.Fatal(err)
	}
	saved, _ := os.ReadFile(filepath.Join(tmp, "copy.json"))
	fmt.Print(string(saved))

	// Unknown fields are errors that name the field.
	_, err = aml.ParseInferenceConfig([]byte(`{"entryScript": "score.py", "entry_script": "score.py"}`))
	fmt.Println(err)

	var roundTrip aml.InferenceConfig
	fmt.Println(json.Unmarshal(saved, &roundTrip), roundTrip.SourceDirectory)
	// Output:
	// entry script: src/score.py
	// environment: my-deploy-env:1 [azureml-defaults scikit-learn==1.0.2]
	// conda file:
	// channels:
	//   - conda-forge
	// dependencies:
	//   - python=3.8
	//   - pip:
	//       - azureml-defaults
	//       - scikit-learn==1.0.2
	// {
	//   "entryScript": "score.py",
	//   "sourceDirectory": "src",
	//   "environment": {
	//     "name": "my-deploy-env",
	//     "python": {
	//       "condaDependencies": {
	//         "channels": [
	//           "conda-forge"
	//         ],
	//         "dependencies": [
	//           "python=3.8",
	//           {
	//             "pip": [
	//               "azureml-defaults",
	//               "scikit-learn==1.0.2"
	//             ]
	//           }
	//         ]
	//       },
	//       "userManagedDependencies": false
	//     },
	//     "version": "1"
	//   }
	// }
	// inferenceconfig.json: entry_script: unknown field
	// <nil> src
}

// Other packages keep their records in the workspace; Update is an atomic
// read-modify-write, safe across goroutines and processes.
func ExampleWorkspace_Update() {
	ctx := context.Background()
	tmp, _ := os.MkdirTemp("", "aml-example")
	defer os.RemoveAll(tmp)
	ws, err := aml.Open(ctx, tmp, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Close()

	type service struct {
		State    string `json:"state"`
		Replicas int    `json:"replicas"`
	}
	create := func(old []byte, exists bool) ([]byte, error) {
		if exists {
			return nil, errcode.New(errcode.AlreadyExists, `service "iris" already exists`)
		}
		return json.Marshal(service{State: "Transitioning", Replicas: 1})
	}
	fmt.Println(ws.Update(ctx, "service", "iris", create))
	fmt.Println(ws.Update(ctx, "service", "iris", create))

	err = ws.Update(ctx, "service", "iris", func(old []byte, exists bool) ([]byte, error) {
		var s service
		json.Unmarshal(old, &s)
		s.State, s.Replicas = "Healthy", 3
		return json.Marshal(s)
	})
	fmt.Println(err)
	recs, _ := ws.List(ctx, "service")
	for _, r := range recs {
		fmt.Println(r.Name, string(r.Value))
	}
	// Output:
	// <nil>
	// service "iris" already exists
	// <nil>
	// iris {"state":"Healthy","replicas":3}
}

// A workspace whose meta.db was deleted does not open as a new, empty
// workspace over its model files: Open fails with DataLoss, and
// CheckWorkspace lists the files that can be registered again.
func ExampleCheckWorkspace() {
	ctx := context.Background()
	tmp, _ := os.MkdirTemp("", "aml-example")
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "workspace")
	ws, err := aml.Open(ctx, dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	model := filepath.Join(tmp, "model.pkl")
	os.WriteFile(model, []byte("weights"), 0o644)
	if _, err := ws.RegisterModel(ctx, "sklearn-iris", model, nil); err != nil {
		log.Fatal(err)
	}
	ws.Close()

	os.Remove(filepath.Join(dir, "meta.db"))
	_, err = aml.Open(ctx, dir, nil)
	fmt.Println("open:", errors.Is(err, errcode.DataLoss))

	rep, err := aml.CheckWorkspace(ctx, dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("metadata:", rep.Metadata)
	fmt.Println("files to register again:", len(rep.Orphans))
	// Output:
	// open: true
	// metadata: missing
	// files to register again: 1
}
