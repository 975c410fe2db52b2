package aksml_test

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestLibraryBuildsOnOtherSystems cross-compiles the packages a Go program
// or a unit test imports to deploy and score models (the workspace, the
// simulator, the router, the replica server) for macOS and Windows: a
// developer there must be able to build against the simulator. Linux-only
// speed-ups (the router's event loop, raw socket calls) have portable
// fallbacks; this keeps them from leaking into a portable file.
func TestLibraryBuildsOnOtherSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the library twice")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to cross-compile: %v", err)
	}
	pkgs := []string{"./aml", "./compute", "./endpoint", "./webservice", "./simulator", "./frontend/...", "./scoring"}
	for _, goos := range []string{"darwin", "windows"} {
		t.Run(goos, func(t *testing.T) {
			cmd := exec.Command(goBin, append([]string{"build"}, pkgs...)...)
			cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("GOOS=%s go build %v: %v\n%s", goos, pkgs, err, out.String())
			}
		})
	}
}
