package image_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aksml/aksml/image"
)

// Two environments with the same content share one image, whatever their
// names and versions; any change to the content gives a new digest.
func ExampleSpec_Digest() {
	a := &image.Spec{Name: "sklearn", Version: "1", BaseImage: "ubuntu:22.04", UserManaged: true,
		PipPackages: []string{"scikit-learn==1.3", "joblib"}}
	b := &image.Spec{Name: "sklearn-copy", Version: "7", BaseImage: "docker.io/library/ubuntu:22.04", UserManaged: true,
		PipPackages: []string{"joblib", "scikit-learn==1.3"}}
	c := &image.Spec{Name: "sklearn", Version: "2", BaseImage: "ubuntu:22.04", UserManaged: true,
		PipPackages: []string{"joblib", "scikit-learn==1.4"}}
	da, _ := a.Digest()
	db, _ := b.Digest()
	dc, _ := c.Digest()
	ref, _ := a.Ref()
	fmt.Println("a and b share an image:", da == db)
	fmt.Println("c needs another:", da != dc)
	fmt.Println("tag:", strings.HasPrefix(ref, "aksml/env:"), len(strings.TrimPrefix(ref, "aksml/env:")))
	// Output:
	// a and b share an image: true
	// c needs another: true
	// tag: true 64
}

// PackageSource honours .amlignore (or .gitignore) in every directory.
func ExamplePackageSource() {
	dir, _ := os.MkdirTemp("", "example-source-")
	defer os.RemoveAll(dir)
	for name, content := range map[string]string{
		"score.py":          "def run(raw): return raw\n",
		".amlignore":        "*.ipynb\noutputs/\n",
		"explore.ipynb":     "{}",
		"outputs/model.pkl": "x",
		"lib/util.py":       "",
		"lib/.amlignore":    "*.tmp\n",
		"lib/scratch.tmp":   "",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	src, err := image.PackageSource(context.Background(), dir, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Join(src.Files, "\n"))
	// Output:
	// .amlignore
	// lib/.amlignore
	// lib/util.py
	// score.py
}

// The Dockerfile of a Go handler on an empty base: the scoring binary and
// the source, models mounted at run time.
func ExampleSpec_Dockerfile() {
	s := &image.Spec{
		BaseImage:   "scratch",
		EntryScript: "score.py",
		Source:      "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		SourceName:  "my_project",
		ScoreBinary: "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	}
	df, err := s.Dockerfile()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(df), "\n") {
		if !strings.HasPrefix(line, "#") {
			fmt.Println(line)
		}
	}
	// Output:
	// FROM scratch
	// COPY aksml/aksml-score /usr/local/bin/aksml-score
	// ENV AML_APP_ROOT="/var/azureml-app" \
	//     AZUREML_SOURCE_DIRECTORY="/var/azureml-app/my_project" \
	//     AZUREML_ENTRY_SCRIPT="my_project/score.py"
	// COPY ["source/","/var/azureml-app/my_project/"]
	// WORKDIR /var/azureml-app
	// EXPOSE 5001
	// ENTRYPOINT ["/usr/local/bin/aksml-score"]
}
