package scoringtest

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
)

// The linear model's files.
var (
	// LinearScoreScript is the standard-library score.py of the linear model:
	// init() loads $AZUREML_MODEL_DIR/model.json, run(raw_data) takes
	// {"data": [[x1, x2, x3], ...]} and returns one prediction per row.
	//
	//go:embed files/linear/score.py
	LinearScoreScript []byte
	// LinearModelJSON is the model file: {"coef": [...], "intercept": ...}.
	//
	//go:embed files/linear/model.json
	LinearModelJSON []byte
)

// Registration of the linear model in the AZUREML_MODEL_DIR layout.
const (
	LinearModelName    = "linear"
	LinearModelVersion = 1
	LinearModelFile    = "model.json"
)

// LinearModel says where WriteLinearModel put the files.
type LinearModel struct {
	// SourceDir holds score.py (the source directory).
	SourceDir string
	// EntryScript is "score.py", relative to SourceDir.
	EntryScript string
	// ModelFile is the path of model.json, for registering the model.
	ModelFile string
	// ModelDir is the AZUREML_MODEL_DIR of a deployment of this one model:
	// <dir>/azureml-models/linear/1.
	ModelDir string
}

// Config returns a scoring.Config that hosts the Python linear model.
func (m LinearModel) Config() scoring.Config {
	return scoring.Config{EntryScript: m.EntryScript, SourceDir: m.SourceDir, ModelDir: m.ModelDir}
}

// WriteLinearModel writes the linear model below dir: the source directory
// dir/src with score.py, and dir/azureml-models/linear/1/model.json.
func WriteLinearModel(dir string) (LinearModel, error) {
	m := LinearModel{
		SourceDir:   filepath.Join(dir, "src"),
		EntryScript: "score.py",
		ModelDir:    filepath.Join(dir, "azureml-models", LinearModelName, fmt.Sprint(LinearModelVersion)),
	}
	m.ModelFile = filepath.Join(m.ModelDir, LinearModelFile)
	for _, d := range []string{m.SourceDir, m.ModelDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return LinearModel{}, errcode.Wrap(errcode.Internal, err)
		}
	}
	if err := os.WriteFile(filepath.Join(m.SourceDir, m.EntryScript), LinearScoreScript, 0o644); err != nil {
		return LinearModel{}, errcode.Wrap(errcode.Internal, err)
	}
	if err := os.WriteFile(m.ModelFile, LinearModelJSON, 0o644); err != nil {
		return LinearModel{}, errcode.Wrap(errcode.Internal, err)
	}
	return m, nil
}

// Linear is the model's parameters.
type Linear struct {
	Coef      []float64 `json:"coef"`
	Intercept float64   `json:"intercept"`
}

// Predict returns intercept + coef·x for each row; it fails on a row of the
// wrong width.
func (l *Linear) Predict(rows [][]float64) ([]float64, error) {
	out := make([]float64, len(rows))
	for i, row := range rows {
		if len(row) != len(l.Coef) {
			return nil, errcode.Errorf(errcode.InvalidArgument, "row %d has %d features, the model expects %d", i, len(row), len(l.Coef))
		}
		y := l.Intercept
		for j, c := range l.Coef {
			y += c * row[j]
		}
		out[i] = y
	}
	return out, nil
}

// LinearHandler is the linear model as a Go handler: Init reads model.json
// from the model directory, Run takes the same input as the score.py.
type LinearHandler struct {
	model Linear
}

var _ scoring.SchemaProvider = (*LinearHandler)(nil)

// NewLinearHandler is a scoring.NewHandler for the Go linear model.
func NewLinearHandler() scoring.Handler { return &LinearHandler{} }

// Init loads modelDir/model.json.
func (h *LinearHandler) Init(_ context.Context, modelDir string) error {
	b, err := os.ReadFile(filepath.Join(modelDir, LinearModelFile))
	if err != nil {
		return errcode.Wrap(errcode.FailedPrecondition, err)
	}
	if err := json.Unmarshal(b, &h.model); err != nil {
		return errcode.Errorf(errcode.InvalidArgument, "%s: %v", LinearModelFile, err)
	}
	return nil
}

// Run predicts {"data": [[...], ...]}.
func (h *LinearHandler) Run(_ context.Context, input []byte) ([]byte, error) {
	var req struct {
		Data [][]float64 `json:"data"`
	}
	if err := json.Unmarshal(input, &req); err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "input: %v", err)
	}
	out, err := h.model.Predict(req.Data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// Schema declares the input and output for /swagger.json.
func (h *LinearHandler) Schema() (input, output json.RawMessage) {
	return json.RawMessage(`{"type":"object","properties":{"data":{"type":"array","items":{"type":"array","items":{"type":"number","format":"double"}}}},"example":{"data":[[1,2,3]]}}`),
		json.RawMessage(`{"type":"array","items":{"type":"number","format":"double"},"example":[7.0]}`)
}
