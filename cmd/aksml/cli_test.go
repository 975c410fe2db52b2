package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/simulator"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// cli runs the command in this process against a workspace of its own.
// Compute targets run on provider (the in-process simulator), which lives
// as long as the test, as it would in a Go program.
type cli struct {
	t        *testing.T
	ws       string
	provider driver.Provider
	stdin    string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	sim := simulator.New(nil)
	t.Cleanup(func() { _ = sim.Close() })
	c := &cli{t: t, ws: filepath.Join(t.TempDir(), "ws"), provider: sim}
	if _, _, code := c.run("workspace", "create"); code != 0 {
		t.Fatal("workspace create failed")
	}
	return c
}

// run runs one command line and returns its stdout, stderr and exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := &env{stdin: strings.NewReader(c.stdin), stdout: &out, stderr: &errb, provider: c.provider,
		getenv: func(k string) string {
			if k == "AKSML_WORKSPACE" {
				return c.ws
			}
			return ""
		}}
	code := run(ctx, args, e)
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("aksml %s: exit %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), code, errs, out)
	}
	return out
}

// scrubbers replace what changes from run to run.
var scrubbers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`sha256:[0-9a-f]{64}`), "sha256:DIGEST"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`), "TIME"},
	{regexp.MustCompile(`127\.\d+\.\d+\.\d+:\d+`), "ADDR"},
	{regexp.MustCompile(`\b[A-Za-z0-9]{32}\b`), "KEY"},
	{regexp.MustCompile(`ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`), "TOKEN"},
	{regexp.MustCompile(`"(refreshAfter|expiryOn)": \d+`), `"$1": UNIXTIME`},
}

func (c *cli) scrub(s string) string {
	s = strings.ReplaceAll(s, c.ws, "WORKSPACE")
	if wd, err := os.Getwd(); err == nil {
		s = strings.ReplaceAll(s, wd, "CWD")
	}
	for _, r := range scrubbers {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return s
}

// columns collapses the padding of table output, whose widths follow
// values the scrubbers replaced.
var padding = regexp.MustCompile(` {2,}`)

// golden compares got (scrubbed) with testdata/golden/name, or rewrites
// it with -update.
func (c *cli) golden(name, got string) {
	c.t.Helper()
	got = c.scrub(got)
	if strings.HasSuffix(name, ".table") {
		got = padding.ReplaceAllString(got, "  ")
	}
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			c.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatalf("%v (run go test -update to write it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		c.t.Errorf("%s differs from the golden file (-want +got):\n%s", name, d)
	}
}

func TestNormalizeArgs(t *testing.T) {
	got := normalizeArgs([]string{"model", "deploy", "-ct", "myaks", "-m", "m:1", "-n", "svc", "-ic", "ic.json", "-dc=dc.json", "--", "-ct"})
	want := []string{"model", "deploy", "--ct", "myaks", "-m", "m:1", "-n", "svc", "--ic", "ic.json", "--dc=dc.json", "--", "-ct"}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
}

// TestGolden walks every show and list command in json and table form,
// --query, and the error exits, against the in-process simulator.
func TestGolden(t *testing.T) {
	c := newCLI(t)
	c.golden("workspace-show.json", c.ok("workspace", "show"))
	c.golden("workspace-show.table", c.ok("workspace", "show", "-o", "table"))

	c.golden("model-register.json", c.ok("model", "register", "-n", "mymodel", "-p", "testdata/model/model.json", "--tag", "team=fraud", "--description", "scale by two"))
	c.ok("model", "register", "-n", "mymodel", "-p", "testdata/model3/model.json")
	c.golden("model-list.json", c.ok("model", "list"))
	c.golden("model-list.table", c.ok("model", "list", "-o", "table"))
	c.golden("model-list.tsv", c.ok("model", "list", "-o", "tsv"))
	c.golden("model-list.yaml", c.ok("model", "list", "-o", "yaml", "--query", "[].{id: id, tags: tags}"))
	c.golden("model-show.json", c.ok("model", "show", "-i", "mymodel:1"))
	c.golden("model-show.table", c.ok("model", "show", "-n", "mymodel", "-o", "table"))
	c.golden("model-list-query.json", c.ok("model", "list", "--query", "[?tags.team=='fraud'].id"))
	c.golden("model-list-query.tsv", c.ok("model", "list", "--query", "[].[name, version]", "-o", "tsv"))

	c.golden("computetarget-create.json", c.ok("computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest", "--agent-count", "2"))
	c.golden("computetarget-list.json", c.ok("computetarget", "list"))
	c.golden("computetarget-list.table", c.ok("computetarget", "list", "-o", "table"))
	c.golden("computetarget-show.json", c.ok("computetarget", "show", "-n", "myaks"))
	c.golden("computetarget-show.table", c.ok("computetarget", "show", "-n", "myaks", "-o", "table"))

	// The seed's spelling, single-dash multi-letter flags included.
	out := c.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig.json")
	c.golden("model-deploy.json", out)
	c.golden("service-list.json", c.ok("service", "list"))
	c.golden("service-list.table", c.ok("service", "list", "-o", "table"))
	c.golden("service-show.json", c.ok("service", "show", "-n", "myservice"))
	c.golden("service-show.table", c.ok("service", "show", "-n", "myservice", "-o", "table"))
	c.golden("service-show-query.tsv", c.ok("service", "show", "-n", "myservice", "--query", "[name, state, models[0]]", "-o", "tsv"))
	c.golden("service-run.json", c.ok("service", "run", "-n", "myservice", "-d", `{"data": [1, 2.5]}`))
	c.stdin = `{"data": [3]}`
	c.golden("service-run-stdin.json", c.ok("service", "run", "-n", "myservice", "-f", "-"))
	c.golden("service-get-keys.json", c.ok("service", "get-keys", "-n", "myservice"))
	if logs := c.ok("service", "get-logs", "-n", "myservice", "--init"); !strings.Contains(logs, "myservice-1: init: scale 2\n") {
		t.Errorf("get-logs --init lacks init()'s output:\n%s", logs)
	}

	c.golden("endpoint-create.json", c.ok("endpoint", "realtime", "create", "-n", "myep", "-ct", "myaks", "-m", "mymodel:1",
		"-ic", "testdata/inferenceconfig.json", "-dc", "testdata/epconfig.json", "--version-name", "ver1", "--traffic-percentile", "50"))
	c.ok("endpoint", "realtime", "create-version", "-n", "myep", "--version-name", "ver2", "-m", "mymodel:2",
		"-ic", "testdata/inferenceconfig.json", "-dc", "testdata/epconfig.json", "--traffic-percentile", "0")
	c.golden("endpoint-update-version.json", c.ok("endpoint", "realtime", "update-version", "-n", "myep", "--version-name", "ver2", "--traffic-percentile", "30"))
	c.golden("endpoint-list.json", c.ok("endpoint", "realtime", "list"))
	c.golden("endpoint-list.table", c.ok("endpoint", "realtime", "list", "-o", "table"))
	c.golden("endpoint-show.json", c.ok("endpoint", "realtime", "show", "-n", "myep"))
	c.golden("endpoint-show.table", c.ok("endpoint", "realtime", "show", "-n", "myep", "-o", "table"))
	c.golden("endpoint-show-query.tsv", c.ok("endpoint", "realtime", "show", "-n", "myep", "--query", "versions[].[versionName, trafficPercentile]", "-o", "tsv"))
}

// TestErrors checks the error exits: message on stderr with its code, an
// exit code per class, nothing on stdout.
func TestErrors(t *testing.T) {
	c := newCLI(t)
	c.ok("model", "register", "-n", "mymodel", "-p", "testdata/model/model.json")
	c.ok("computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest")
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"unknown-model", []string{"model", "deploy", "-ct", "myaks", "-m", "nope:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig.json"}, exitNotFound},
		{"bad-deploymentconfig", []string{"model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig-bad.json"}, exitInvalidArgument},
		{"unknown-command", []string{"modle", "list"}, exitInvalidArgument},
		{"unknown-subcommand", []string{"service", "frobnicate"}, exitInvalidArgument},
		{"unknown-flag", []string{"model", "list", "--frobnicate"}, exitInvalidArgument},
		{"missing-flag", []string{"service", "show"}, exitInvalidArgument},
		{"unknown-service", []string{"service", "show", "-n", "nope"}, exitNotFound},
		{"bad-output", []string{"model", "list", "-o", "xml"}, exitInvalidArgument},
		{"bad-query", []string{"model", "list", "--query", "[?"}, exitInvalidArgument},
		{"create-exists", []string{"computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest"}, exitAlreadyExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := c.run(tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.code, errs)
			}
			if out != "" {
				t.Errorf("stdout not empty: %s", out)
			}
			c.t = t
			c.golden("error-"+tc.name+".txt", errs)
		})
	}
}

// TestNoWorkspace: commands other than workspace create need one.
func TestNoWorkspace(t *testing.T) {
	c := &cli{t: t, ws: filepath.Join(t.TempDir(), "none")}
	_, errs, code := c.run("model", "list")
	if code != exitNotFound || !strings.Contains(errs, "aksml workspace create") {
		t.Errorf("exit %d, stderr %q; want NotFound with a hint", code, errs)
	}
}

// TestCreateWithoutCluster: with no in-process provider (a shell),
// creating a cloud cluster is refused with the way forward.
func TestCreateWithoutCluster(t *testing.T) {
	c := newCLI(t)
	c.provider = nil
	_, errs, code := c.run("computetarget", "create", "aks", "-n", "myaks")
	if code != exitFailedPrecondition || !strings.Contains(errs, "--local") || !strings.Contains(errs, "attach") {
		t.Errorf("exit %d, stderr %q; want FailedPrecondition naming --local and attach", code, errs)
	}
}

// TestHelpExamples: every command's help has an example.
func TestHelpExamples(t *testing.T) {
	a := &app{env: &env{getenv: func(string) string { return "" }}}
	root := a.rootCmd()
	var missing []string
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		if c.Runnable() && !c.HasSubCommands() && !c.Hidden && c.Example == "" {
			missing = append(missing, c.CommandPath())
		}
		for _, s := range c.Commands() {
			visit(s)
		}
	}
	visit(root)
	if len(missing) > 0 {
		t.Errorf("commands without an example: %v", missing)
	}
}
