package scoring

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNewAppRoot(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src := writeFiles(t, filepath.Join(base, "my_project"), map[string]string{"extradata.json": "{}"})
	models := filepath.Join(base, "ws", "azureml-models")
	model := writeFiles(t, filepath.Join(models, "iris", "1"), map[string]string{"model.pkl": "w"})
	tests := []struct {
		name, src, model string
		want             map[string]string // entry of the app root → link target
	}{
		{"source and models", src, model, map[string]string{"my_project": src, "azureml-models": models}},
		{"models outside azureml-models", src, base, map[string]string{"my_project": src}},
		{"no models", src, "", map[string]string{"my_project": src}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, remove, err := NewAppRoot(tt.src, tt.model)
			if err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(root)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(tt.want) {
				t.Errorf("app root holds %d entries, want %v", len(ents), tt.want)
			}
			for name, target := range tt.want {
				if got, err := os.Readlink(filepath.Join(root, name)); err != nil || got != target {
					t.Errorf("%s -> %q, %v; want %s", name, got, err, target)
				}
			}
			if _, err := os.Stat(filepath.Join(root, "my_project", "extradata.json")); err != nil {
				t.Errorf("./my_project/extradata.json from the app root: %v", err)
			}
			remove()
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Errorf("the app root outlived remove: %v", err)
			}
			for _, p := range []string{filepath.Join(src, "extradata.json"), filepath.Join(model, "model.pkl")} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("remove deleted %s: %v", p, err)
				}
			}
		})
	}
}
