package aksml_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestNoProductPackageLinksTesting checks, with go list, that no package
// of the module but the test helpers (packages named …test, such as
// compute/drivertest and kube/kubetest) links the standard library's
// testing package: a program that deploys models must not carry the test
// framework, its flags and its init.
func TestNoProductPackageLinksTesting(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps=false", "-test=false", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg, deps := fields[0], fields[1:]
		if strings.HasSuffix(pkg, "test") {
			continue // a test helper: testing is its job
		}
		checked++
		for _, d := range deps {
			if d == "testing" {
				t.Errorf("%s links package testing; product code must not (go list -deps %s shows the path)", pkg, pkg)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("only %d packages listed; go list output:\n%s", checked, out)
	}
}
