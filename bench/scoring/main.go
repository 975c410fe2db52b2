// Command scoring benchmarks the aksml replica server (package scoring, the
// engine of cmd/aksml-score) against gunicorn + Flask hosting the same
// score.py the way azureml-inference-server-http does, with the same number
// of Python worker processes, on loopback, with one load generator in this
// program.
//
//	go run ./bench/scoring            # full run (about 3 minutes: 3 interleaved rounds of 2 s cells)
//	go run ./bench/scoring -quick     # short run (about 1 minute)
//
// Two scripts are measured: an echo script (json.loads of the body) and a
// scikit-learn Ridge regression on the diabetes data set, trained at start.
// Each is driven at concurrency 1, 8 and 32 (closed loop: every client sends
// its next request when the previous answer arrives). The baseline is the
// better of gunicorn's sync workers and gunicorn's gthread workers: the
// higher throughput and, separately, the lower p99. The output ends with one
// line "RESULT key=value ..." whose ratios are aksml ÷ gunicorn+Flask.
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	//go:embed flaskapp.py
	flaskApp []byte
	//go:embed echo_score.py
	echoScript []byte
	//go:embed sklearn_score.py
	sklearnScript []byte
	//go:embed sklearn_train.py
	sklearnTrain []byte
)

var (
	quick    = flag.Bool("quick", false, "short run: 1 s per cell, one round")
	python   = flag.String("python", "/usr/bin/python3", "Python interpreter with numpy, scikit-learn, Flask and gunicorn (Debian's)")
	workers  = flag.Int("workers", 2, "Python worker processes per server")
	threads  = flag.Int("threads", 4, "threads per gunicorn gthread worker")
	duration = flag.Duration("duration", 2*time.Second, "measured time per cell")
	warmup   = flag.Duration("warmup", 500*time.Millisecond, "unmeasured time before each cell")
	rounds   = flag.Int("rounds", 3, "interleaved rounds per cell; the round with the highest throughput is kept")
	concs    = flag.String("concurrency", "1,8,32", "comma-separated client concurrencies")
	only     = flag.String("only", "", "run only this script (echo or sklearn) and only aksml when set with -aksml_only")
	aksOnly  = flag.Bool("aksml_only", false, "measure only aksml (for profiling)")
	cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the benchmark process (the load generator) to this file")
)

// target is one server under test.
type target struct {
	name string
	addr string
	pid  int // root of the server's process tree, for CPU accounting
	stop func()
}

// cell is the measurement of one server at one concurrency.
type cell struct {
	rps      float64
	p50, p99 time.Duration
	n, errs  int
	cpu      time.Duration // server CPU (all its processes) per request; 0 if unknown
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *quick {
		*duration = time.Second
		*warmup = 300 * time.Millisecond
		*rounds = 1
	}
	var cs []int
	for _, s := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			log.Fatalf("bad -concurrency %q", *concs)
		}
		cs = append(cs, c)
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(cs); err != nil {
		pprof.StopCPUProfile()
		log.Fatalf("bench/scoring: %v", err)
	}
}

func run(cs []int) error {
	dir, err := os.MkdirTemp("", "aksml-bench-scoring-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := map[string][]byte{"flaskapp.py": flaskApp, "echo/score.py": echoScript, "sklearn/score.py": sklearnScript, "train.py": sklearnTrain}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	bin, err := buildAksmlScore(dir)
	if err != nil {
		return err
	}
	modelDir := filepath.Join(dir, "azureml-models", "sklearn_regression_model", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return err
	}
	sample := filepath.Join(dir, "sample.json")
	if out, err := exec.Command(*python, filepath.Join(dir, "train.py"), filepath.Join(modelDir, "sklearn_regression_model.pkl"), sample).CombinedOutput(); err != nil {
		return fmt.Errorf("training the sklearn model (needs python3-sklearn): %v\n%s", err, out)
	}
	var skSample struct {
		Data     [][]float64 `json:"data"`
		Expected []float64   `json:"expected"`
	}
	b, err := os.ReadFile(sample)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &skSample); err != nil {
		return err
	}
	skBody, _ := json.Marshal(map[string]any{"data": skSample.Data})
	skWant, _ := json.Marshal(skSample.Expected)
	echoBody := []byte(`{"data": [[1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]], "id": "request-0001"}`)

	scripts := []struct {
		name     string
		dir      string
		body     []byte
		want     []byte
		modelDir string
	}{
		{"echo", filepath.Join(dir, "echo"), echoBody, echoBody, ""},
		{"sklearn", filepath.Join(dir, "sklearn"), skBody, skWant, modelDir},
	}
	fmt.Printf("scoring benchmark: %d Python workers per server (gthread: %d threads each), %v per cell, best of %d round(s), concurrency %v, loopback, %d CPUs, GOMAXPROCS=%d\n",
		*workers, *threads, *duration, *rounds, cs, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Printf("aksml = cmd/aksml-score (static build, its default GOMAXPROCS: half the CPUs when hosting Python); gunicorn = %s -m gunicorn + Flask (flaskapp.py); the load generator runs in this process\n", *python)
	fmt.Printf("server CPU/req = CPU time of the server's processes (Go server and Python workers, or gunicorn master and workers) per request\n\n")
	fmt.Printf("%-8s %5s  %-17s %10s %10s %10s %12s %7s\n", "script", "conc", "server", "req/s", "p50", "p99", "server CPU/req", "errors")

	results := map[string]map[int]map[string]cell{}
	for _, sc := range scripts {
		if *only != "" && sc.name != *only {
			continue
		}
		targets, err := startTargets(bin, dir, sc.dir, sc.modelDir)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if err := check(t.addr, sc.body, sc.want); err != nil {
				stopAll(targets)
				return fmt.Errorf("%s serving %s: %w", t.name, sc.name, err)
			}
		}
		results[sc.name] = map[int]map[string]cell{}
		for _, c := range cs {
			results[sc.name][c] = map[string]cell{}
			for r := 0; r < *rounds; r++ {
				for _, t := range targets {
					m := measure(t, sc.body, c, *warmup, *duration)
					if old, ok := results[sc.name][c][t.name]; !ok || m.rps > old.rps {
						results[sc.name][c][t.name] = m
					}
				}
			}
			for _, t := range targets {
				m := results[sc.name][c][t.name]
				fmt.Printf("%-8s %5d  %-17s %10.0f %10s %10s %12s %7d\n", sc.name, c, t.name, m.rps, fmtDur(m.p50), fmtDur(m.p99), fmtMicro(m.cpu), m.errs)
			}
		}
		stopAll(targets)
	}

	fmt.Printf("\nratios aksml ÷ gunicorn+Flask (throughput vs the faster gunicorn mode, p99 vs the lower gunicorn p99):\n")
	fmt.Printf("%-8s %5s %10s %10s %10s %12s\n", "script", "conc", "rps_ratio", "p50_ratio", "p99_ratio", "cpu_saving")
	kv := []string{}
	for _, sc := range scripts {
		if results[sc.name] == nil || *aksOnly {
			continue
		}
		for _, c := range cs {
			cell := results[sc.name][c]
			a := cell["aksml"]
			sync, gth := cell["gunicorn sync"], cell["gunicorn gthread"]
			rps := a.rps / max(sync.rps, gth.rps)
			p50 := float64(a.p50) / float64(min(sync.p50, gth.p50))
			p99 := float64(a.p99) / float64(min(sync.p99, gth.p99))
			cpuSave := 0.0
			if a.cpu > 0 && sync.cpu > 0 && gth.cpu > 0 {
				cpuSave = float64(min(sync.cpu, gth.cpu)) / float64(a.cpu)
			}
			fmt.Printf("%-8s %5d %10.2f %10.2f %10.2f %12.2f\n", sc.name, c, rps, p50, p99, cpuSave)
			suffix := ""
			if c != 8 {
				suffix = "_c" + strconv.Itoa(c)
			}
			kv = append(kv, fmt.Sprintf("%s_rps_ratio%s=%.2f", sc.name, suffix, rps), fmt.Sprintf("%s_p99_ratio%s=%.2f", sc.name, suffix, p99))
			if cpuSave > 0 {
				kv = append(kv, fmt.Sprintf("%s_cpu_saving%s=%.2f", sc.name, suffix, cpuSave))
			}
		}
	}
	fmt.Printf("\ngoals at concurrency 8: echo rps ≥ 3, sklearn rps ≥ 2.5, p99 ratios ≤ 0.5; at concurrency 1: rps ≥ 1.5\n")
	fmt.Println("RESULT " + strings.Join(kv, " "))
	return nil
}

func fmtMicro(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// startTargets starts aksml and both gunicorn modes for one script.
func startTargets(bin, dir, sourceDir, modelDir string) ([]target, error) {
	var ts []target
	a, err := startAksml(bin, sourceDir, modelDir)
	if err != nil {
		return nil, err
	}
	ts = append(ts, a)
	if *aksOnly {
		return ts, nil
	}
	for _, mode := range []string{"sync", "gthread"} {
		g, err := startGunicorn(dir, sourceDir, modelDir, mode)
		if err != nil {
			stopAll(ts)
			return nil, err
		}
		ts = append(ts, g)
	}
	return ts, nil
}

func stopAll(ts []target) {
	for _, t := range ts {
		t.stop()
	}
}

// buildAksmlScore compiles cmd/aksml-score (static, as it ships) into dir.
func buildAksmlScore(dir string) (string, error) {
	bin := filepath.Join(dir, "aksml-score")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/aksml/aksml/cmd/aksml-score")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/aksml-score (run the benchmark from the aksml repository): %v\n%s", err, out)
	}
	return bin, nil
}

func startAksml(bin, sourceDir, modelDir string) (target, error) {
	port, err := freePort()
	if err != nil {
		return target{}, err
	}
	args := []string{"--entry_script", filepath.Join(sourceDir, "score.py"), "--source_dir", sourceDir,
		"--port", strconv.Itoa(port), "--worker_count", strconv.Itoa(*workers), "--interpreter", *python}
	if modelDir != "" {
		args = append(args, "--model_dir", modelDir)
	}
	return startServer("aksml", exec.Command(bin, args...), port)
}

// startServer starts cmd and waits until GET / on port answers 200.
func startServer(name string, cmd *exec.Cmd, port int) (target, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return target{}, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			killGroup(cmd.Process)
			<-exited
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			return target{}, fmt.Errorf("%s exited: %s", name, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return target{}, fmt.Errorf("%s did not become ready: %s", name, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return target{name: name, addr: addr, pid: cmd.Process.Pid, stop: stop}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startGunicorn(dir, sourceDir, modelDir, mode string) (target, error) {
	port, err := freePort()
	if err != nil {
		return target{}, err
	}
	args := []string{"-m", "gunicorn", "--bind", "127.0.0.1:" + strconv.Itoa(port), "--workers", strconv.Itoa(*workers),
		"--worker-class", mode, "--log-level", "warning", "--timeout", "300", "--chdir", dir}
	if mode == "gthread" {
		args = append(args, "--threads", strconv.Itoa(*threads))
	}
	args = append(args, "flaskapp:app")
	cmd := exec.Command(*python, args...)
	cmd.Dir = sourceDir
	cmd.Env = append(os.Environ(), "BENCH_ENTRY_SCRIPT="+filepath.Join(sourceDir, "score.py"), "AZUREML_MODEL_DIR="+modelDir)
	t, err := startServer("gunicorn "+mode, cmd, port)
	if err != nil {
		return target{}, fmt.Errorf("%w (needs Debian's gunicorn and python3-flask)", err)
	}
	// Every worker loads the script (and the model) when it boots: give them
	// all the time to do so before measuring.
	time.Sleep(time.Second)
	return t, nil
}

// check sends one request and compares the JSON answer with want.
func check(addr string, body, want []byte) error {
	resp, err := http.Post("http://"+addr+"/score", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, got)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("answer %q: %w", got, err)
	}
	_ = json.Unmarshal(want, &w)
	if fmt.Sprint(g) != fmt.Sprint(w) {
		return fmt.Errorf("answer %s, want %s", got, want)
	}
	return nil
}

// measure drives addr with c closed-loop clients for warm+dur and reports
// the requests completed during dur.
func measure(t target, body []byte, c int, warm, dur time.Duration) cell {
	addr := t.addr
	req := []byte(fmt.Sprintf("POST /score HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body)))
	req = append(req, body...)
	start := time.Now()
	measureFrom := start.Add(warm)
	end := measureFrom.Add(dur)
	lats := make([][]time.Duration, c)
	errs := make([]int, c)
	var wg sync.WaitGroup
	var cpu time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Until(measureFrom))
		before, ok1 := treeCPU(t.pid)
		time.Sleep(time.Until(end))
		after, ok2 := treeCPU(t.pid)
		if ok1 && ok2 {
			cpu = after - before
		}
	}()
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{addr: addr}
			defer cl.close()
			lat := make([]time.Duration, 0, 4096)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				status, err := cl.do(req)
				t1 := time.Now()
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil || status != 200 {
					errs[i]++
					if err != nil {
						time.Sleep(time.Millisecond)
					}
					continue
				}
				if t1.After(end) {
					// Count only requests that completed inside the window.
					break
				}
				lat = append(lat, t1.Sub(t0))
			}
			lats[i] = lat
		}()
	}
	wg.Wait()
	var all []time.Duration
	m := cell{}
	for i := range c {
		all = append(all, lats[i]...)
		m.errs += errs[i]
	}
	slices.Sort(all)
	m.n = len(all)
	if m.n > 0 {
		m.cpu = cpu / time.Duration(m.n)
	}
	m.rps = float64(m.n) / dur.Seconds()
	if m.n > 0 {
		m.p50 = all[m.n*50/100]
		m.p99 = all[min(m.n-1, m.n*99/100)]
	}
	return m
}

// client is a minimal HTTP/1.1 client: one connection, reused while the
// server keeps it open (gunicorn's sync workers close it after each reply).
type client struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

var errBadResponse = errors.New("malformed HTTP response")

func (c *client) do(req []byte) (int, error) {
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return 0, err
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 64<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return 0, err
	}
	status, err := c.readResponse()
	if err != nil {
		c.close()
	}
	return status, err
}

func (c *client) readResponse() (int, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, errBadResponse
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, errBadResponse
	}
	length := -1
	closeAfter := bytes.HasPrefix(line, []byte("HTTP/1.0"))
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, errBadResponse
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, err = strconv.Atoi(string(v))
			if err != nil {
				return 0, errBadResponse
			}
		case bytes.EqualFold(k, []byte("Connection")):
			closeAfter = bytes.EqualFold(v, []byte("close"))
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, fmt.Errorf("%w: chunked responses are not supported", errBadResponse)
		}
	}
	if length < 0 {
		if !closeAfter {
			return 0, fmt.Errorf("%w: no Content-Length", errBadResponse)
		}
		_, err := io.Copy(io.Discard, c.br)
		c.close()
		return status, err
	}
	if _, err := c.br.Discard(length); err != nil {
		return 0, err
	}
	if closeAfter {
		c.close()
	}
	return status, nil
}
