// Command gomodel is a Go-native model packaged as its own scoring server,
// for the container-replica tests: a one-line main around scoring.Main.
package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/aksml/aksml/scoring"
)

type model struct{ files []string }

func (m *model) Init(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		m.files = append(m.files, e.Name())
	}
	return nil
}

func (m *model) Run(ctx context.Context, in []byte) ([]byte, error) {
	return json.Marshal(map[string]any{"appRoot": os.Getenv("AML_APP_ROOT"), "modelFiles": m.files, "input": json.RawMessage(in)})
}

func main() { scoring.Main(func() scoring.Handler { return &model{} }) }
