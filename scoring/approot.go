package scoring

import (
	"os"
	"path/filepath"

	"github.com/aksml/aksml/errcode"
)

// makeAppRoot returns the app root of the workers: Config.AppRoot when set,
// else a new one made by NewAppRoot, which remove deletes.
func (c *Config) makeAppRoot() (dir string, remove func(), err error) {
	if c.AppRoot != "" {
		return c.AppRoot, func() {}, nil
	}
	return NewAppRoot(c.SourceDir, c.ModelDir)
}

// NewAppRoot makes a new directory laid out as an Azure ML container's app
// root (/var/azureml-app), for a replica whose source directory is a folder
// of the user's: it holds a link to sourceDir under the source directory's
// own name and, when modelDir lies in a folder named azureml-models, a
// link to that folder. A script run in it opens ./<source_dir_name>/file
// as it would in Azure. remove deletes the directory and the links, never
// what they point to. Errors are errcode.Internal.
func NewAppRoot(sourceDir, modelDir string) (dir string, remove func(), err error) {
	for _, p := range []*string{&sourceDir, &modelDir} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return "", nil, errcode.Errorf(errcode.Internal, "create the app root: %w", err)
			}
		}
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
	if err := link(sourceDir); err != nil {
		remove()
		return "", nil, errcode.Errorf(errcode.Internal, "create the app root: %w", err)
	}
	if models := modelsRoot(modelDir); models != "" && filepath.Base(sourceDir) != "azureml-models" {
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
