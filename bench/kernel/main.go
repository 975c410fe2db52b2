// Command kernel measures the aksml Jupyter kernel (cmd/aksml-kernel): the
// time from starting the kernel process with a connection file to the
// execute_reply of its first cell, as a Jupyter client sees it over ZeroMQ
// (the goal is at most 2 s); and a cell's interpreter overhead for a Run
// call: the same svc.Run on a service of the in-process simulator called
// from compiled Go (the baseline), from a loop inside one interpreted cell,
// and as one cell per call (parse, rewrite, compile and run each time).
//
// Usage:
//
//	go run ./bench/kernel [-quick] [-starts 5] [-calls 2000]
//
// It ends with one line:
//
//	RESULT start_first_result_ms=… run_compiled_us=… interp_loop_ratio=… cell_per_call_ratio=… cell_overhead_us=…
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/internal/gointerp"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

func main() {
	quick := flag.Bool("quick", false, "a short run")
	starts := flag.Int("starts", 5, "kernel starts to time")
	calls := flag.Int("calls", 2000, "Run calls per variant")
	flag.Parse()
	if *quick {
		*starts, *calls = 2, 200
	}
	if err := run(*starts, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "bench/kernel:", err)
		os.Exit(1)
	}
}

func run(starts, calls int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "aksml-bench-kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin := filepath.Join(dir, "aksml-kernel")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/aksml-kernel")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the kernel (run from the module root): %w", err)
	}
	var firsts []time.Duration
	for i := range starts {
		d, err := startToFirstResult(ctx, bin, filepath.Join(dir, fmt.Sprintf("conn-%d.json", i)))
		if err != nil {
			return err
		}
		firsts = append(firsts, d)
	}
	slices.Sort(firsts)
	start := firsts[len(firsts)/2]

	compiled, loop, cell, err := runOverhead(ctx, dir, calls)
	if err != nil {
		return err
	}
	fmt.Printf("%-52s %12s %10s\n", "measure", "time", "ratio")
	fmt.Printf("%-52s %12s %10s\n", fmt.Sprintf("kernel start → first result (median of %d)", starts), start.Round(time.Millisecond), "goal ≤ 2s")
	fmt.Printf("%-52s %12s %10s\n", "svc.Run from compiled Go (baseline), per call", compiled.Round(time.Microsecond), "1.00")
	fmt.Printf("%-52s %12s %10.2f\n", "svc.Run in a loop inside one cell, per call", loop.Round(time.Microsecond), float64(loop)/float64(compiled))
	fmt.Printf("%-52s %12s %10.2f\n", "svc.Run as a whole cell, per cell", cell.Round(time.Microsecond), float64(cell)/float64(compiled))
	fmt.Printf("RESULT start_first_result_ms=%d run_compiled_us=%d interp_loop_ratio=%.2f cell_per_call_ratio=%.2f cell_overhead_us=%d\n",
		start.Milliseconds(), compiled.Microseconds(), float64(loop)/float64(compiled), float64(cell)/float64(compiled),
		(cell - compiled).Microseconds())
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func sign(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return []byte(hex.EncodeToString(m.Sum(nil)))
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startToFirstResult starts the kernel and times it to the reply of a
// first cell, sent as soon as the shell socket connects.
func startToFirstResult(ctx context.Context, bin, connFile string) (time.Duration, error) {
	p, err := freePorts(5)
	if err != nil {
		return 0, err
	}
	key := newID()
	conn, _ := json.Marshal(map[string]any{"transport": "tcp", "ip": "127.0.0.1", "shell_port": p[0], "iopub_port": p[1],
		"stdin_port": p[2], "control_port": p[3], "hb_port": p[4], "key": key, "signature_scheme": "hmac-sha256"})
	if err := os.WriteFile(connFile, conn, 0o600); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, bin, connFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	shell := zmq4.NewDealer(ctx, zmq4.WithDialerRetry(time.Millisecond), zmq4.WithDialerMaxRetries(30000))
	defer shell.Close()
	if err := shell.Dial(fmt.Sprintf("tcp://127.0.0.1:%d", p[0])); err != nil {
		return 0, err
	}
	hdr, _ := json.Marshal(map[string]string{"msg_id": newID(), "session": newID(), "username": "bench",
		"date": time.Now().UTC().Format(time.RFC3339Nano), "msg_type": "execute_request", "version": "5.3"})
	content, _ := json.Marshal(map[string]any{"code": "x := 20\nx + 22", "silent": false})
	parent, meta := []byte("{}"), []byte("{}")
	if err := shell.Send(zmq4.NewMsgFrom([]byte("<IDS|MSG>"), sign([]byte(key), hdr, parent, meta, content), hdr, parent, meta, content)); err != nil {
		return 0, err
	}
	msg, err := shell.Recv()
	if err != nil {
		return 0, err
	}
	d := time.Since(t0)
	for i, f := range msg.Frames {
		if string(f) == "<IDS|MSG>" && i+5 < len(msg.Frames) {
			var reply map[string]any
			_ = json.Unmarshal(msg.Frames[i+5], &reply)
			if reply["status"] != "ok" {
				return 0, fmt.Errorf("first cell: %v", reply)
			}
			return d, nil
		}
	}
	return 0, errors.New("first reply has no <IDS|MSG> delimiter")
}

const input = `{"data": [[1, 2, 3]]}`

// setup is the same deployment, compiled here and interpreted in cells.
const setupCell = `
import (
	"context"
	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)
ctx := context.Background()
ws, err := aml.Open(ctx, WORKDIR, nil)
if err != nil {
	panic(err)
}
sim := simulator.New(nil)
target, err := compute.Create(ctx, ws, "bench", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
if err != nil {
	panic(err)
}
if err := target.Wait(ctx); err != nil {
	panic(err)
}
echo := &aml.InferenceConfig{Handler: func() scoring.Handler {
	return scoring.HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
}}
svc, err := aml.Deploy(ctx, ws, "echo", nil, echo, webservice.DeployConfig{NumReplicas: 1, AuthEnabled: webservice.Bool(false)}, target, nil)
if err != nil {
	panic(err)
}
if err := svc.WaitForDeployment(ctx); err != nil {
	panic(err)
}
input := ` + "`" + input + "`" + `
`

func runOverhead(ctx context.Context, dir string, calls int) (compiled, loop, cell time.Duration, err error) {
	// compiled
	ws, err := aml.Open(ctx, filepath.Join(dir, "ws-compiled"), nil)
	if err != nil {
		return
	}
	defer ws.Close()
	sim := simulator.New(nil)
	defer sim.Close()
	target, err := compute.Create(ctx, ws, "bench", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		return
	}
	if err = target.Wait(ctx); err != nil {
		return
	}
	echo := &aml.InferenceConfig{Handler: func() scoring.Handler {
		return scoring.HandlerFunc(func(ctx context.Context, in []byte) ([]byte, error) { return in, nil })
	}}
	svc, err := aml.Deploy(ctx, ws, "echo", nil, echo, webservice.DeployConfig{NumReplicas: 1, AuthEnabled: webservice.Bool(false)}, target, nil)
	if err != nil {
		return
	}
	if err = svc.WaitForDeployment(ctx); err != nil {
		return
	}
	for range 50 { // warm the connections
		if _, err = svc.Run(ctx, input); err != nil {
			return
		}
	}
	t0 := time.Now()
	for range calls {
		if _, err = svc.Run(ctx, input); err != nil {
			return
		}
	}
	compiled = time.Since(t0) / time.Duration(calls)

	// interpreted
	it, err := gointerp.New(nil)
	if err != nil {
		return
	}
	setup := "WORKDIR := " + fmt.Sprintf("%q", filepath.Join(dir, "ws-interp")) + "\n" + setupCell
	if _, err = it.Eval(ctx, "setup", setup); err != nil {
		err = fmt.Errorf("setup cell: %w", err)
		return
	}
	defer func() { _, _ = it.Eval(ctx, "close", "sim.Close()\nws.Close()") }()
	if _, err = it.Eval(ctx, "warm", "for i := 0; i < 50; i++ {\n\t_, err = svc.Run(ctx, input)\n\tif err != nil {\n\t\tpanic(err)\n\t}\n}"); err != nil {
		return
	}
	t0 = time.Now()
	if _, err = it.Eval(ctx, "loop", fmt.Sprintf("for i := 0; i < %d; i++ {\n\t_, err = svc.Run(ctx, input)\n\tif err != nil {\n\t\tpanic(err)\n\t}\n}", calls)); err != nil {
		return
	}
	loop = time.Since(t0) / time.Duration(calls)
	t0 = time.Now()
	for range calls {
		var r gointerp.Result
		if r, err = it.Eval(ctx, "cell", "svc.Run(ctx, input)"); err != nil {
			return
		}
		if !r.Value.IsValid() || r.Value.Kind() != reflect.Slice {
			err = fmt.Errorf("a Run cell showed %v", r.Value)
			return
		}
	}
	cell = time.Since(t0) / time.Duration(calls)
	return
}
