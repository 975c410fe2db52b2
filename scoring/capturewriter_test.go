package scoring

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestMain lets this test binary serve as aksml-score's capture writer
// process, as cmd/aksml-score does through MainWith.
func TestMain(m *testing.M) {
	if isCaptureWriterProcess(os.Getenv) {
		if err := runCaptureWriter(os.Args[1:], os.Getenv, Options{}, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "aksml-score:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// captureScript collects each request's body as one row and prints it.
const captureScript = `from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("m", designation="inputs", feature_names=["i"])

def run(raw_data):
    dc.collect([[raw_data]])
    print("scored", raw_data)
    return "ok"
`

// childServer is a replica as aksml-score makes it from its flags and
// environment, with data collection to root/ws and telemetry to root/tel,
// and its capture writer process (this test binary, see TestMain) unless
// inProcess.
func childServer(t *testing.T, root string, inProcess bool) *Server {
	t.Helper()
	src := writeFiles(t, filepath.Join(root, "src"), map[string]string{"score.py": captureScript})
	for k, v := range map[string]string{
		"AML_MODEL_DC_STORAGE_ENABLED": "true", "AKSML_MODEL_DATA_DIR": filepath.Join(root, "ws"),
		"AML_APP_INSIGHTS_ENABLED": "true", "AKSML_TELEMETRY_DIR": filepath.Join(root, "tel"),
		"AKSML_PYTHON": testPython(t), "SERVICE_NAME": "svc", "AKSML_REPLICA_NAME": "svc-1",
	} {
		t.Setenv(k, v)
	}
	args := []string{"--entry_script", filepath.Join(src, "score.py")}
	st, err := parseCLI(args, os.Getenv, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, closeSink, err := openTelemetrySinks(context.Background(), st, os.Getenv, Options{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeSink(context.Background()) })
	st.cfg.Telemetry.Sink = sink
	if !inProcess {
		st.cfg.capture = captureProcessOf(args, os.Getenv)
	}
	return newReady(t, st.cfg)
}

// collectedRows reads the inputs file of childServer's replica: its rows'
// values, by how many times each was written.
func collectedRows(t *testing.T, root string) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "ws", "modeldata", "*", "*", "*", "svc", "m", "*", "inputs", "*", "*", "*", "data.csv"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id,i" {
		t.Fatalf("header %v", recs[:min(1, len(recs))])
	}
	rows := map[string]int{}
	for _, r := range recs[1:] {
		rows[r[2]]++
	}
	return rows
}

// wroteEachOnce checks that childServer's replica wrote the rows of
// requests 0 to n-1 once each, and each request's two telemetry records
// (the request and its printed line).
func wroteEachOnce(t *testing.T, root string, n int) {
	t.Helper()
	rows := collectedRows(t, root)
	for i := range n {
		if rows[strconv.Itoa(i)] != 1 {
			t.Fatalf("row %d written %d times", i, rows[strconv.Itoa(i)])
		}
	}
	recs, err := ReadServiceTelemetry(filepath.Join(root, "tel"), "svc")
	if err != nil {
		t.Fatal(err)
	}
	prints := 0
	for _, r := range recs {
		if r.Kind == TelemetryPrint {
			prints++
		}
	}
	if len(recs) != 2*n || prints != n {
		t.Fatalf("%d telemetry records, %d prints; want %d, %d", len(recs), prints, 2*n, n)
	}
}

// schedPolicies is the scheduling policy of each thread of process pid (5
// is SCHED_IDLE), from /proc.
func schedPolicies(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/sched", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "policy" {
				p, _ := strconv.Atoi(f[2])
				out = append(out, p)
			}
		}
	}
	return out
}

// aksml-score's replica hands its records to a capture writer process at
// idle priority, which writes them where the replica would have: every
// record of 2,000 requests, once, counted by the replica as written.
func TestCaptureWriterProcess(t *testing.T) {
	root := t.TempDir()
	s := childServer(t, root, false)
	if !s.child.alive() {
		t.Fatalf("no capture writer process; logs:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
	const n = 2000
	postConcurrently(t, s, n, func(i int) (string, []string) { return strconv.Itoa(i), nil })
	pid := s.child.cmd.Process.Pid
	pols := schedPolicies(t, pid)
	if len(pols) == 0 {
		t.Fatal("the process has no threads")
	}
	for _, p := range pols {
		if p != 5 {
			t.Fatalf("thread policies %v: want all SCHED_IDLE (5)", pols)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.child.cmd.ProcessState == nil || !s.child.cmd.ProcessState.Success() {
		t.Fatalf("the process did not exit cleanly: %v", s.child.cmd.ProcessState)
	}
	if st := s.DataCollectionStats(); st != (DataCollectionStats{Collected: n, Written: n}) {
		t.Fatalf("data collection %+v", st)
	}
	if st := s.TelemetryStats(); st != (TelemetryStats{Recorded: 2 * n, Sent: 2 * n}) {
		t.Fatalf("telemetry %+v", st)
	}
	wroteEachOnce(t, root, n)
}

// When the capture writer process is killed, the replica says so in its
// log and writes its records itself: nothing is written twice, and every
// record is written or counted as failed (those the process had taken and
// not reported).
func TestCaptureWriterProcessKilled(t *testing.T) {
	root := t.TempDir()
	s := childServer(t, root, false)
	const n = 1000
	postConcurrently(t, s, n, func(i int) (string, []string) { return strconv.Itoa(i), nil })
	if err := s.child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica notices", func() bool { return !s.child.alive() })
	postConcurrently(t, s, n, func(i int) (string, []string) { return strconv.Itoa(n + i), nil })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !logsContain(s, "capture writer process: it exited; the replica writes its model data and telemetry records itself") {
		t.Fatalf("logs:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
	st := s.DataCollectionStats()
	if st.Collected != 2*n || st.Written+st.Failed != 2*n || st.Dropped != 0 {
		t.Fatalf("data collection %+v", st)
	}
	rows := collectedRows(t, root)
	total := 0
	for v, k := range rows {
		if k != 1 {
			t.Fatalf("row %s written %d times", v, k)
		}
		total++
	}
	// Rows the process wrote before it was killed and had not reported
	// count as failed, yet are in the file.
	if int64(total) < st.Written || int64(total) > st.Written+st.Failed {
		t.Fatalf("%d rows in the file; stats %+v", total, st)
	}
	for i := n; i < 2*n; i++ {
		if rows[strconv.Itoa(i)] != 1 {
			t.Fatalf("row %d, collected after the kill, written %d times", i, rows[strconv.Itoa(i)])
		}
	}
	if ts := s.TelemetryStats(); ts.Recorded != 4*n || ts.Sent+ts.Failed != 4*n {
		t.Fatalf("telemetry %+v", ts)
	}
}

// A capture writer process that falls behind (stopped here, as the kernel
// all but stops it on a replica whose cores are all busy) never slows or
// fails a request and loses nothing: once its pipe has no room for a
// batch, the replica writes the batches itself; once it runs again it
// writes what it was given. Every record is written once.
func TestCaptureWriterProcessStalled(t *testing.T) {
	root := t.TempDir()
	s := childServer(t, root, false)
	pid := s.child.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const n = 10000
	postConcurrently(t, s, n, func(i int) (string, []string) { return strconv.Itoa(i), nil })
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, ts := s.DataCollectionStats(), s.TelemetryStats()
	t.Logf("data collection %+v; telemetry %+v; %d batches written by the replica, the pipe %d bytes", st, ts, s.child.overflowed.Load(), s.child.pipeSize)
	if st != (DataCollectionStats{Collected: n, Written: n}) {
		t.Fatalf("data collection %+v", st)
	}
	if ts != (TelemetryStats{Recorded: 2 * n, Sent: 2 * n}) {
		t.Fatalf("telemetry %+v", ts)
	}
	if s.child.overflowed.Load() == 0 {
		t.Fatal("the stopped process's pipe never filled: the test did not test")
	}
	wroteEachOnce(t, root, n)
}

// AKSML_CAPTURE_WRITER takes process or in-process; anything else is an
// error naming it.
func TestCaptureWriterSetting(t *testing.T) {
	env := map[string]string{EnvCaptureWriter: "sometimes"}
	_, err := parseCLI([]string{"--entry_script", "score.py"}, mapEnv(env), nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `AKSML_CAPTURE_WRITER "sometimes" is not process or in-process`) {
		t.Fatalf("err = %v", err)
	}
	if p := captureProcessOf(nil, mapEnv(map[string]string{EnvCaptureWriter: "in-process"})); p != nil {
		t.Fatalf("in-process: %+v", p)
	}
}

// The process refuses a batch of an unknown kind or of a kind that is
// off, and stops at the end of its input, even in the middle of a batch.
func TestServeCaptureWriterInput(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"empty", nil, ""},
		{"cut header", []byte{'D', 0, 0}, ""},
		{"cut batch", []byte{'D', 0, 0, 0, 1, 0, 0, 0, 9, 1}, ""},
		{"unknown kind", []byte{'Q', 0, 0, 0, 0, 0, 0, 0, 0}, `a batch of unknown kind 'Q'`},
		{"data off", []byte{'D', 0, 0, 0, 1, 0, 0, 0, 0}, "model data records, with data collection off"},
		{"telemetry off", []byte{'T', 0, 0, 0, 1, 0, 0, 0, 0}, "telemetry records, with telemetry off"},
		{"huge", []byte{'T', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, "exceeds the limit"},
	} {
		err := serveCaptureWriter(bytes.NewReader(c.in), io.Discard, nil, nil)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
		}
	}
}
