// Package extract produces the symbol files of package symbols with yaegi's
// extractor; the generator writes them and the staleness test compares them.
package extract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"strings"
)

// exportImporter type-checks packages from the export data go list
// reports; Files sets it.
var exportImporter types.Importer

// newExportImporter runs go list -export over paths and their
// dependencies and returns an importer reading the export data it reports.
func newExportImporter(paths []string) (types.Importer, error) {
	args := append([]string{"list", "-export", "-deps", "-json=ImportPath,Export"}, paths...)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -export: %w", err)
	}
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		exports[p.ImportPath] = p.Export
	}
	return importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	}), nil
}

// Std lists the standard-library packages a cell may import.
var Std = []string{
	"bufio", "bytes", "context", "encoding/json", "errors", "fmt", "io", "log",
	"math", "math/rand", "net/http", "os", "path/filepath", "sort", "strconv",
	"strings", "sync", "sync/atomic", "time",
}

// Aksml lists aksml's packages a cell may import.
var Aksml = []string{
	"github.com/aksml/aksml/aml",
	"github.com/aksml/aksml/compute",
	"github.com/aksml/aksml/compute/driver",
	"github.com/aksml/aksml/endpoint",
	"github.com/aksml/aksml/errcode",
	"github.com/aksml/aksml/notebook",
	"github.com/aksml/aksml/scoring",
	"github.com/aksml/aksml/scoring/handler",
	"github.com/aksml/aksml/simulator",
	"github.com/aksml/aksml/webservice",
}

// FileName is the name `yaegi extract` gives the file of importPath.
func FileName(importPath string) string {
	return strings.NewReplacer("/", "-", ".", "_", "~", "_").Replace(importPath) + ".go"
}

// Files returns the symbol file of each package in paths, by file name.
func Files(paths []string) (map[string][]byte, error) {
	imp, err := newExportImporter(paths)
	if err != nil {
		return nil, err
	}
	exportImporter = imp
	ext := Extractor{Dest: "symbols"}
	out := map[string][]byte{}
	for _, p := range paths {
		var buf bytes.Buffer
		if _, err := ext.Extract(p, "", &buf); err != nil {
			return nil, fmt.Errorf("extracting %s: %w", p, err)
		}
		out[FileName(p)] = buf.Bytes()
	}
	return out, nil
}

// All returns the symbol files of Std and Aksml.
func All() (map[string][]byte, error) {
	return Files(append(append([]string{}, Std...), Aksml...))
}
