package aml

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/google/go-cmp/cmp"
	digest "github.com/opencontainers/go-digest"
)

// Tests that need a second process re-execute this test binary with
// AKSML_AML_CHILD set; TestMain then runs the child's part instead of the
// tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("AKSML_AML_CHILD"); mode != "" {
		os.Exit(childMain(mode))
	}
	// Every incremental content sum is compared with a full one.
	checkIncremental = true
	code := m.Run()
	if populatedDir != "" {
		os.RemoveAll(populatedDir)
	}
	os.Exit(code)
}

// childMain is the child process. Its settings come from the environment:
// AKSML_DIR (workspace), AKSML_NAME (model name), AKSML_SRC (file to
// register), AKSML_N (registrations), AKSML_MARKER (file to create when
// paused).
func childMain(mode string) int {
	ctx := context.Background()
	dir, name, src := os.Getenv("AKSML_DIR"), os.Getenv("AKSML_NAME"), os.Getenv("AKSML_SRC")
	switch mode {
	case "register":
		ws, err := Open(ctx, dir, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer ws.Close()
		n, _ := strconv.Atoi(os.Getenv("AKSML_N"))
		for i := range n {
			// Each registration has content unique to this child and step.
			p := filepath.Join(src, fmt.Sprintf("%d-%d", os.Getpid(), i))
			if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			m, err := ws.RegisterModel(ctx, name, p, nil)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			if err := ws.Put(ctx, "child", fmt.Sprintf("%d-%d", os.Getpid(), i), []byte(m.ID())); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			fmt.Printf("%d %s\n", m.Version, m.Files[0].Digest)
		}
		return 0
	case "increment":
		ws, err := Open(ctx, dir, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer ws.Close()
		n, _ := strconv.Atoi(os.Getenv("AKSML_N"))
		start := time.Now()
		for range n {
			if err := ws.Update(ctx, "counter", "c", increment); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
		}
		fmt.Println(time.Since(start).Nanoseconds())
		return 0
	case "chaos":
		return chaosChild(dir, src)
	case "upgrade":
		return upgradeChild(dir)
	case "pause-copy", "pause-precommit":
		point := strings.TrimPrefix(mode, "pause-")
		testHook = func(p string) {
			if p != point {
				return
			}
			os.WriteFile(os.Getenv("AKSML_MARKER"), nil, 0o644)
			// Hang here until the parent kills us.
			time.Sleep(10 * time.Minute)
		}
		ws, err := Open(ctx, dir, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		_, err = ws.RegisterModel(ctx, name, src, nil)
		fmt.Fprintln(os.Stderr, "registration was not interrupted:", err)
		return 3
	}
	fmt.Fprintln(os.Stderr, "unknown child mode", mode)
	return 2
}

// startChild starts this test binary as a child process in mode. The
// child is killed and reaped when the test ends.
func startChild(t *testing.T, mode string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"AKSML_AML_CHILD=" + mode}, env...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// waitForFile polls for path to appear, failing after a deadline: the
// child process signals that it reached its pause point by creating it.
func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never reached its pause point (%s)", path)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Two processes registering into one workspace at once get disjoint
// versions that together are 1..2N, and the workspace stays consistent.
func TestIntegrationTwoProcessesRegister(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := t.TempDir()
	const n = 10
	env := []string{"AKSML_DIR=" + dir, "AKSML_NAME=shared", "AKSML_SRC=" + src, "AKSML_N=" + strconv.Itoa(n)}
	start := time.Now()
	a, aout := startChild(t, "register", env...)
	b, bout := startChild(t, "register", env...)
	for _, c := range []*exec.Cmd{a, b} {
		if err := c.Wait(); err != nil {
			t.Fatalf("child failed: %v", err)
		}
	}
	elapsed := time.Since(start)

	got := map[int]digest.Digest{}
	var versions []int
	for _, out := range []*bytes.Buffer{aout, bout} {
		sc := bufio.NewScanner(out)
		lines := 0
		for sc.Scan() {
			var v int
			var d string
			if _, err := fmt.Sscanf(sc.Text(), "%d %s", &v, &d); err != nil {
				t.Fatalf("child output %q: %v", sc.Text(), err)
			}
			if _, dup := got[v]; dup {
				t.Errorf("version %d given to two registrations", v)
			}
			got[v] = digest.Digest(d)
			versions = append(versions, v)
			lines++
		}
		if lines != n {
			t.Errorf("child reported %d registrations, want %d", lines, n)
		}
	}
	slices.Sort(versions)
	want := make([]int, 2*n)
	for i := range want {
		want[i] = i + 1
	}
	if diff := cmp.Diff(want, versions); diff != "" {
		t.Fatalf("versions (-want +got):\n%s", diff)
	}

	ctx := context.Background()
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for v, d := range got {
		m, err := ws.ModelVersion(ctx, "shared", v)
		if err != nil || m.Files[0].Digest != d {
			t.Errorf("shared:%d = %v, %v; the child saw digest %s", v, m, err, d)
		}
	}
	recs, err := ws.List(ctx, "child")
	if err != nil || len(recs) != 2*n {
		t.Errorf("child records: %d, %v; want %d", len(recs), err, 2*n)
	}
	if err := ws.Check(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("2 processes × %d registrations (each followed by a Put) in %v: %v per operation",
		n, elapsed.Round(time.Millisecond), (elapsed / (4 * n)).Round(time.Microsecond))
}

func increment(old []byte, exists bool) ([]byte, error) {
	n := 0
	if exists {
		n, _ = strconv.Atoi(string(old))
	}
	return []byte(strconv.Itoa(n + 1)), nil
}

// Two processes incrementing one counter with Update lose no increment,
// and each operation stays about as fast as in a single process.
func TestIntegrationTwoProcessesUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	const n = 100
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Baseline: one process, the same number of operations.
	start := time.Now()
	for range 2 * n {
		if err := ws.Update(ctx, "counter", "base", increment); err != nil {
			t.Fatal(err)
		}
	}
	single := time.Since(start) / (2 * n)

	env := []string{"AKSML_DIR=" + dir, "AKSML_N=" + strconv.Itoa(n)}
	a, aout := startChild(t, "increment", env...)
	b, bout := startChild(t, "increment", env...)
	var busiest time.Duration
	for i, c := range []*exec.Cmd{a, b} {
		if err := c.Wait(); err != nil {
			t.Fatalf("child failed: %v", err)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace([]*bytes.Buffer{aout, bout}[i].String()), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		busiest = max(busiest, time.Duration(ns))
	}
	got, err := ws.Get(ctx, "counter", "c")
	if err != nil || string(got) != strconv.Itoa(2*n) {
		t.Fatalf("counter = %s, %v; want %d", got, err, 2*n)
	}
	// The two children overlap, so the slower one's loop bounds the time
	// for all 2n operations.
	shared := busiest / (2 * n)
	t.Logf("Update: %v per op in one process, %v per op with two processes contending (ratio %.2f)",
		single.Round(time.Microsecond), shared.Round(time.Microsecond), float64(shared)/float64(single))
}

// A registration SIGKILLed at any point leaves the whole version or
// nothing, and the workspace opens cleanly afterwards.
func TestIntegrationKilledRegistration(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"copy", "precommit"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			src := t.TempDir()
			big := filepath.Join(src, "big.bin")
			data := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16) // 8 MiB, copied 1 MiB at a time
			if err := os.WriteFile(big, data, 0o644); err != nil {
				t.Fatal(err)
			}
			small := filepath.Join(src, "small.bin")
			writeFiles(t, src, map[string]string{"small.bin": "small"})
			marker := filepath.Join(t.TempDir(), "paused")

			// The parent keeps its own handle open throughout.
			ws, err := Open(ctx, dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()

			child, _ := startChild(t, "pause-"+point,
				"AKSML_DIR="+dir, "AKSML_NAME=big", "AKSML_SRC="+big, "AKSML_MARKER="+marker)
			waitForFile(t, marker)

			switch point {
			case "copy":
				// Copying happens outside the lock: others keep working.
				if _, err := ws.RegisterModel(ctx, "other", small, nil); err != nil {
					t.Fatalf("register while the child copies: %v", err)
				}
			case "precommit":
				// The child holds the lock inside its transaction.
				short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				_, err := ws.Model(short, "big")
				cancel()
				wantErr(t, err, errcode.DeadlineExceeded)
			}

			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			err = child.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child ended with %v, want killed", err)
			}

			// A fresh handle opens cleanly and sees no partial version.
			ws2, err := Open(ctx, dir, nil)
			if err != nil {
				t.Fatalf("Open after the kill: %v", err)
			}
			defer ws2.Close()
			if _, err := ws2.Model(ctx, "big"); !errors.Is(err, errcode.NotFound) {
				t.Fatalf("Model(big) after the kill: %v, want NotFound", err)
			}
			if list, err := ws2.ListModels(ctx, &ListModelsOptions{Name: "big"}); err != nil || len(list) != 0 {
				t.Fatalf("ListModels(big) = %v, %v", list, err)
			}
			if err := ws2.Check(ctx); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
				t.Errorf("Open left the dead child's staging area: %v", entries)
			}
			res, err := ws2.GC(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wantOrphans := map[string]int{"copy": 0, "precommit": 1}[point]
			if res.BlobsRemoved != wantOrphans {
				t.Errorf("GC removed %d blobs, want %d (%+v)", res.BlobsRemoved, wantOrphans, res)
			}
			// Registering again works and starts at version 1.
			m, err := ws2.RegisterModel(ctx, "big", big, nil)
			if err != nil || m.Version != 1 || m.Size != int64(len(data)) {
				t.Fatalf("register after the kill = %+v, %v", m, err)
			}
			if err := ws2.Check(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
