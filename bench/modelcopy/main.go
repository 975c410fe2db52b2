// Command modelcopy measures what giving replicas their own copy of the
// model files costs at deploy time. aml.Runtime lays out the models of a
// deployment as read-only copies of the workspace's blob store (so a
// replica that writes to a model file cannot damage the store); before, it
// hard-linked them. The benchmark registers one model of -mb megabytes and
// times, for the same blob, in the same run:
//
//   - aml.Runtime's layout (copy_file_range copies, read-only);
//   - a hard link of the blob (the former layout);
//   - GNU cp --reflink=auto of the blob (the public baseline: what a shell
//     script would do; a reflink where the file system supports it);
//
// each -n times, and prints the median and the ratio to cp.
//
//	go run ./bench/modelcopy [-quick] [-mb 500] [-n 5]
//
// It ends with one line:
//
//	RESULT mb=… layout_ms=… link_ms=… cp_ms=… layout_vs_cp=…
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/scoring"
)

type nopHandler struct{}

func (nopHandler) Init(context.Context, string) error               { return nil }
func (nopHandler) Run(_ context.Context, in []byte) ([]byte, error) { return in, nil }

func main() {
	quick := flag.Bool("quick", false, "a short run: 50 MB, 3 rounds")
	mb := flag.Int("mb", 500, "model size in megabytes")
	n := flag.Int("n", 5, "rounds")
	flag.Parse()
	if *quick {
		*mb, *n = 50, 3
	}
	if err := run(*mb, *n); err != nil {
		fmt.Fprintln(os.Stderr, "modelcopy:", err)
		os.Exit(1)
	}
}

func run(mb, n int) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "aksml-modelcopy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "model.bin")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, int64(mb)<<20); err != nil {
		return err
	}
	f.Close()
	ws, err := aml.Open(ctx, filepath.Join(tmp, "ws"), nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	m, err := ws.RegisterModel(ctx, "big", src, nil)
	if err != nil {
		return err
	}
	blob, err := ws.BlobPath(m.Files[0].Digest)
	if err != nil {
		return err
	}
	os.Remove(src)
	ic := &aml.InferenceConfig{Handler: func() scoring.Handler { return nopHandler{} }}

	var layout, link, cp []time.Duration
	for i := range n {
		// A new service name each round: a fresh layout, not a reused one.
		start := time.Now()
		if _, err := aml.Runtime(ctx, ws, fmt.Sprintf("svc-%d", i), []*aml.Model{m}, ic); err != nil {
			return err
		}
		layout = append(layout, time.Since(start))

		dst := filepath.Join(tmp, fmt.Sprintf("link-%d", i))
		start = time.Now()
		if err := os.Link(blob, dst); err != nil {
			return err
		}
		link = append(link, time.Since(start))

		dst = filepath.Join(tmp, fmt.Sprintf("cp-%d", i))
		start = time.Now()
		if out, err := exec.Command("cp", "--reflink=auto", blob, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("cp: %v: %s", err, out)
		}
		cp = append(cp, time.Since(start))
		os.Remove(dst)
		os.RemoveAll(filepath.Join(ws.Dir(), "deployments", fmt.Sprintf("svc-%d", i)))
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	lm, km, cm := med(layout), med(link), med(cp)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("model of %d MB, %d rounds, median; load average %s\n", mb, n, load)
	fmt.Printf("%-44s %12s %10s\n", "how replicas get the model", "ms", "vs cp")
	fmt.Printf("%-44s %12.1f %10.2f\n", "aml.Runtime layout (read-only copy)", lm, lm/cm)
	fmt.Printf("%-44s %12.3f %10.4f\n", "hard link into the blob store (before)", km, km/cm)
	fmt.Printf("%-44s %12.1f %10.2f\n", "cp --reflink=auto (baseline)", cm, 1.0)
	fmt.Printf("RESULT mb=%d layout_ms=%.1f link_ms=%.3f cp_ms=%.1f layout_vs_cp=%.2f\n", mb, lm, km, cm, lm/cm)
	return nil
}
