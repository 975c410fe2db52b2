package scoring

import (
	"os"
	"path/filepath"

	"github.com/aksml/aksml/errcode"
)

// makeAppRoot returns the app root of the workers: Config.AppRoot when set,
// else a new directory laid out as an Azure ML container's /var/azureml-app
// (see Config.AppRoot), which remove deletes.
func (c *Config) makeAppRoot() (dir string, remove func(), err error) {
	if c.AppRoot != "" {
		return c.AppRoot, func() {}, nil
	}
	dir, err = os.MkdirTemp("", "aksml-app-")
	if err != nil {
		return "", nil, errcode.Errorf(errcode.Internal, "create the app root: %w", err)
	}
	remove = func() { _ = os.RemoveAll(dir) }
	link := func(target string) error {
		name := filepath.Base(target)
		if name == "." || name == string(filepath.Separator) || name == "" {
			return nil
		}
		return os.Symlink(target, filepath.Join(dir, name))
	}
	if err := link(c.SourceDir); err != nil {
		remove()
		return "", nil, errcode.Errorf(errcode.Internal, "create the app root: %w", err)
	}
	if models := modelsRoot(c.ModelDir); models != "" && filepath.Base(c.SourceDir) != "azureml-models" {
		if err := link(models); err != nil {
			remove()
			return "", nil, errcode.Errorf(errcode.Internal, "create the app root: %w", err)
		}
	}
	return dir, remove, nil
}

// modelsRoot is the directory named azureml-models that holds dir (dir
// itself included), or "".
func modelsRoot(dir string) string {
	for d := dir; d != "" && d != "." && d != string(filepath.Separator); d = filepath.Dir(d) {
		if filepath.Base(d) == "azureml-models" {
			return d
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return ""
}
