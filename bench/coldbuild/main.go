// Command coldbuild measures what importing aksml costs a user on a fresh
// machine: a cold `go build` (an empty build cache in a temporary directory,
// the modules already downloaded, no network) of
//
//   - quickstart: examples/quickstart, the README's first command;
//   - userapp: bench/coldbuild/userapp, a small program deploying a Go
//     handler with aml, compute, webservice and simulator;
//   - reference: bench/coldbuild/reference, the baseline — a plain net/http
//     server with client-go, built from public modules aksml already
//     depends on, the smallest program that talks to Kubernetes.
//
// For each it reports the packages linked (outside the standard library and
// in total, from `go list -deps`) and the seconds the cold build took, and
// ends with one line:
//
//	RESULT quickstart_pkgs=… quickstart_cold_s=… userapp_pkgs=… userapp_cold_s=… reference_pkgs=… reference_cold_s=… quickstart_vs_reference=… userapp_vs_reference=…
//
// The ratios are cold-build seconds over the reference's. Each build uses
// its own empty cache, so the standard library is compiled each time too,
// as on a fresh machine. The machine's load average is printed before and
// after: on a shared machine the seconds move with it, the ratios less.
//
//	go run ./bench/coldbuild [-quick]
//
// -quick counts packages and builds the userapp only (about a minute).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

type program struct {
	key, pkg, what string
	nonStd, total  int
	seconds        float64
	built          bool
}

func main() {
	quick := flag.Bool("quick", false, "count packages and build only the userapp")
	flag.Parse()
	if err := run(*quick); err != nil {
		fmt.Fprintln(os.Stderr, "coldbuild:", err)
		os.Exit(1)
	}
}

func run(quick bool) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	progs := []*program{
		{key: "quickstart", pkg: "./examples/quickstart", what: "examples/quickstart"},
		{key: "userapp", pkg: "./bench/coldbuild/userapp", what: "aml+compute+webservice+simulator, Go handler"},
		{key: "reference", pkg: "./bench/coldbuild/reference", what: "net/http + client-go (baseline)"},
	}
	fmt.Printf("load average before: %s\n", loadavg())
	for _, p := range progs {
		if p.nonStd, p.total, err = countDeps(root, p.pkg); err != nil {
			return err
		}
		if quick && p.key != "userapp" {
			continue
		}
		if p.seconds, err = coldBuild(root, p.pkg); err != nil {
			return err
		}
		p.built = true
	}
	fmt.Printf("load average after:  %s (%d CPUs)\n\n", loadavg(), runtime.NumCPU())

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "program\tpackages (non-std)\tpackages (all)\tcold build s\tvs reference\twhat")
	ref := progs[2]
	var result []string
	for _, p := range progs {
		secs, ratio := "-", "-"
		if p.built {
			secs = fmt.Sprintf("%.1f", p.seconds)
			if ref.built {
				ratio = fmt.Sprintf("%.2f", p.seconds/ref.seconds)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", p.key, p.nonStd, p.total, secs, ratio, p.what)
		result = append(result, fmt.Sprintf("%s_pkgs=%d", p.key, p.nonStd))
		if p.built {
			result = append(result, fmt.Sprintf("%s_cold_s=%.1f", p.key, p.seconds))
		}
	}
	tw.Flush()
	if ref.built {
		for _, p := range progs[:2] {
			if p.built {
				result = append(result, fmt.Sprintf("%s_vs_reference=%.2f", p.key, p.seconds/ref.seconds))
			}
		}
	}
	for _, p := range progs[:2] {
		result = append(result, fmt.Sprintf("%s_pkgs_vs_reference=%.2f", p.key, float64(p.nonStd)/float64(ref.nonStd)))
	}
	fmt.Println()
	fmt.Println("RESULT " + strings.Join(result, " "))
	return nil
}

// moduleRoot is the directory of the aksml module (where go.mod is).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run it inside the aksml module")
	}
	return filepath.Dir(mod), nil
}

// countDeps counts the packages pkg links: outside the standard library,
// and all of them.
func countDeps(root, pkg string) (nonStd, total int, err error) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.Standard}}", pkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("go list -deps %s: %w", pkg, err)
	}
	for _, l := range strings.Fields(string(out)) {
		total++
		if l == "false" {
			nonStd++
		}
	}
	return nonStd, total, nil
}

// coldBuild builds pkg with an empty build cache of its own, modules from
// the existing module cache only, and returns the seconds it took.
func coldBuild(root, pkg string) (float64, error) {
	cache, err := os.MkdirTemp("", "aksml-coldbuild-cache-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(cache)
	outDir, err := os.MkdirTemp("", "aksml-coldbuild-out-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(outDir)
	cmd := exec.Command("go", "build", "-o", filepath.Join(outDir, "prog"), pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOCACHE="+cache, "GOPROXY=off", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
	}
	return time.Since(start).Seconds(), nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
