package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/aksml/aksml/simulator"
)

// childEnv makes the test binary the child process of
// TestIntegrationStaleRecords: it creates a target and a service in the
// workspace the variable names, on its own simulator, and exits.
const childEnv = "AKSML_CLI_TEST_CHILD_WORKSPACE"

func TestMain(m *testing.M) {
	if ws := os.Getenv(childEnv); ws != "" {
		os.Exit(childCreates(ws))
	}
	os.Exit(m.Run())
}

func childCreates(ws string) int {
	sim := simulator.New(nil)
	defer sim.Close()
	for _, args := range [][]string{
		{"computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest"},
		{"model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig.json"},
	} {
		e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, provider: sim,
			getenv: func(k string) string {
				if k == "AKSML_WORKSPACE" {
					return ws
				}
				return ""
			}}
		if code := run(context.Background(), args, e); code != 0 {
			return code
		}
	}
	return 0
}

// TestIntegrationStaleRecords: a child process creates a target and a
// service on its in-process simulator and exits; this process lists them
// as Stale and creates both names again cleanly.
func TestIntegrationStaleRecords(t *testing.T) {
	c := newCLI(t)
	c.ok("model", "register", "-n", "mymodel", "-p", "testdata/model/model.json")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self, "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+c.ws)
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}

	// Another process (this one, without the child's simulator) sees
	// the records as stale.
	sim := c.provider
	c.provider = nil
	var targets []struct{ Name, ProvisioningState, Error string }
	if err := json.Unmarshal([]byte(c.ok("computetarget", "list")), &targets); err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 || targets[0].ProvisioningState != stateStale {
		t.Errorf("computetarget list: %+v, want myaks Stale", targets)
	}
	var svcs []struct{ Name, State string }
	if err := json.Unmarshal([]byte(c.ok("service", "list")), &svcs); err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].State != stateStale {
		t.Errorf("service list: %+v, want myservice Stale", svcs)
	}

	// Creating the same names again works, on this process's simulator.
	c.provider = sim
	c.ok("computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest")
	c.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig.json")
	var show struct{ State string }
	if err := json.Unmarshal([]byte(c.ok("service", "show", "-n", "myservice")), &show); err != nil || show.State != "Healthy" {
		t.Errorf("service show after re-creating: %+v (%v)", show, err)
	}
}
