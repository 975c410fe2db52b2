package scoring

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

const dcScript = `
import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("best_model", designation="inputs", feature_names=["feat1", "feat2"])
    prediction_dc = ModelDataCollector("best_model", designation="predictions", feature_names=["prediction"])

def run(raw_data):
    data = json.loads(raw_data)["data"]
    ctx = inputs_dc.collect(data)
    result = [a + b for a, b in data]
    prediction_dc.collect([[r] for r in result], user_correlation_id=ctx.correlation_id)
    return result
`

func dcConfig(store ModelDataStore, buffer int) *DataCollection {
	return &DataCollection{Store: store, SubscriptionID: "sub", ResourceGroup: "rg", Workspace: "ws",
		Service: "svc", ModelVersions: map[string]string{"best_model": "3"}, Buffer: buffer}
}

func TestDataCollectionWritesV1Layout(t *testing.T) {
	root := t.TempDir()
	fc := clocktesting.NewFakeClock(time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC))
	s := pyServer(t, dcScript, Config{DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0), Clock: fc}, nil)
	for i := range 3 {
		r := do(s, http.MethodPost, "/score", fmt.Sprintf(`{"data": [[%d, 1], [2, 3]]}`, i))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.DataCollectionStats()
	if st != (DataCollectionStats{Collected: 6, Written: 6}) {
		t.Fatalf("stats %+v, want 6 collected and written", st)
	}
	dir := filepath.Join(root, "modeldata", "sub", "rg", "ws", "svc", "best_model", "3")
	in := readLines(t, filepath.Join(dir, "inputs", "2026", "03", "07", "data.csv"))
	pred := readLines(t, filepath.Join(dir, "predictions", "2026", "03", "07", "data.csv"))
	if len(in) != 7 || in[0] != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id,feat1,feat2" {
		t.Fatalf("inputs file:\n%s", strings.Join(in, "\n"))
	}
	if len(pred) != 7 || pred[0] != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id,prediction" {
		t.Fatalf("predictions file:\n%s", strings.Join(pred, "\n"))
	}
	f := strings.Split(in[1], ",")
	if len(f) != 4 || f[2] != "0" || f[3] != "1" {
		t.Fatalf("inputs row %q", in[1])
	}
	// v1's scoring timestamp: UTC, to the microsecond.
	if ts, err := time.Parse("2006-01-02T15:04:05.000000Z", f[0]); err != nil || time.Since(ts).Abs() > time.Hour {
		t.Fatalf("timestamp %q: %v", f[0], err)
	}
	// The prediction rows carry the correlation id of their inputs.
	if p := strings.Split(pred[1], ","); len(p) != 3 || p[1] != f[1] || p[2] != "1" {
		t.Fatalf("prediction row %q, inputs row %q", pred[1], in[1])
	}
}

func TestDataCollectionOffIsNoOp(t *testing.T) {
	s := pyServer(t, dcScript, Config{}, nil)
	r := do(s, http.MethodPost, "/score", `{"data": [[1, 2]]}`)
	if r.status != 200 || strings.TrimSpace(r.body) != "[3]" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if st := s.DataCollectionStats(); st != (DataCollectionStats{}) {
		t.Fatalf("stats %+v with collection off", st)
	}
}

func TestDataCollectionLosesNothingWhenStoreKeepsUp(t *testing.T) {
	n := 10000
	if raceEnabled || testing.Short() {
		n = 2000
	}
	root := t.TempDir()
	s := pyServer(t, `
from azureml.monitoring import ModelDataCollector
def init():
    global dc
    dc = ModelDataCollector("m", designation="inputs")
def run(raw_data):
    dc.collect([raw_data])
    return "ok"
`, Config{DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0), Workers: 2}, nil)
	postConcurrently(t, s, n, func(i int) (string, []string) { return fmt.Sprint(i), nil })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.DataCollectionStats()
	if st.Collected != int64(n) || st.Written != int64(n) || st.Dropped != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v, want %d collected and written", st, n)
	}
	var lines int
	_ = filepath.WalkDir(filepath.Join(root, "modeldata"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			lines += len(readLines(t, p))
		}
		return err
	})
	if lines != n {
		t.Fatalf("%d rows in the store, want %d", lines, n)
	}
}

// blockedStore holds every Append until release is closed.
type blockedStore struct {
	release chan struct{}
	inner   ModelDataStore
}

func (b *blockedStore) Append(ctx context.Context, name string, header, rows []byte) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.inner.Append(ctx, name, header, rows)
}

func TestDataCollectionSlowStoreDropsAndCountsWithoutSlowingRun(t *testing.T) {
	const n, buffer = 300, 10
	store := &blockedStore{release: make(chan struct{}), inner: &LocalModelDataStore{Root: t.TempDir()}}
	s := pyServer(t, `
from azureml.monitoring import ModelDataCollector
def init():
    global dc
    dc = ModelDataCollector("m", designation="inputs", feature_names=["x"])
def run(raw_data):
    dc.collect([raw_data])
    return "ok"
`, Config{DataCollection: dcConfig(store, buffer)}, nil)
	// The store never returns while the requests run: each still completes,
	// so run() does not wait for the store.
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		if r := do(s, http.MethodPost, "/score", fmt.Sprint(i)); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
		slowest = max(slowest, time.Since(start))
	}
	eventually(t, "every record to reach the server", func() bool { return s.DataCollectionStats().Collected == n })
	close(store.release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.DataCollectionStats()
	if st.Written+st.Dropped+st.Failed != st.Collected || st.Collected != n || st.Dropped == 0 || st.Failed != 0 {
		t.Fatalf("stats %+v: want written + dropped == collected == %d, some dropped", st, n)
	}
	// The store holds one batch (at most what the buffer held, plus one)
	// while the buffer fills again.
	if st.Written > 2*buffer+1 {
		t.Fatalf("stats %+v: more written than the buffer (%d) and the batch in the store's hands", st, buffer)
	}
	if !logsContain(s, "records are dropped (and counted)") {
		t.Fatalf("no drop warning in the log:\n%s", strings.Join(s.Logs(0, false), "\n"))
	}
	t.Logf("%d requests with a blocked store: slowest %v; %+v", n, slowest, st)
}

func TestDataCollectionBadRecordsAreLogged(t *testing.T) {
	s := pyServer(t, `
from azureml.monitoring import ModelDataCollector
def init():
    global dc, bad
    dc = ModelDataCollector("m", designation="inputs")
    bad = ModelDataCollector("m", designation="..")
def run(raw_data):
    if raw_data == "object":
        dc.collect([object()])
    elif raw_data == "huge":
        dc.collect(["x" * (5 << 20)])
    elif raw_data == "segment":
        bad.collect([1])
    else:
        dc.collect([1, 2])
    return "ok"
`, Config{DataCollection: dcConfig(&LocalModelDataStore{Root: t.TempDir()}, 0)}, nil)
	for _, in := range []string{"object", "huge", "segment", "fine"} {
		if r := do(s, http.MethodPost, "/score", in); r.status != 200 {
			t.Fatalf("%s: status %d: %s", in, r.status, r.body)
		}
	}
	eventually(t, "the good record to be written", func() bool { return s.DataCollectionStats().Written == 1 })
	for _, want := range []string{
		"ModelDataCollector: cannot collect data for model m (designation inputs): row 0 column 0 holds a value of type object",
		"exceeds the limit of 4194304 bytes; it was not collected",
		`data collection: record refused: designation ".." is not a valid path segment`,
	} {
		if !logsContain(s, want) {
			t.Errorf("log lacks %q:\n%s", want, strings.Join(s.Logs(0, false), "\n"))
		}
	}
	if st := s.DataCollectionStats(); st != (DataCollectionStats{Collected: 2, Written: 1, Failed: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestDataCollectionConfigErrors(t *testing.T) {
	_, err := NewServer(Config{EntryScript: "/x/score.py", DataCollection: &DataCollection{Buffer: -1, Workspace: "a/b"}})
	for _, want := range []string{"DataCollection.Store: is nil", "DataCollection.Buffer: -1 is negative", `DataCollection.Workspace: "a/b" contains a slash`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func readLines(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestModelVersionsOfAzureLayout(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"azureml-models/a/3", "azureml-models/b/1", "azureml-models/b/2", "azureml-models/c/7"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	eq(t, "one model", modelVersionsOf(filepath.Join(root, "azureml-models", "a", "3")), map[string]string{"a": "3"})
	eq(t, "several", modelVersionsOf(filepath.Join(root, "azureml-models")), map[string]string{"a": "3", "c": "7"})
	eq(t, "elsewhere", modelVersionsOf(root), map[string]string(nil))
}

// Close gives a store that does not return 10 s (of the server's clock) to
// write what is buffered; what is left counts as dropped.
func TestDataCollectionCloseBoundsAStuckStore(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC))
	store := &blockedStore{release: make(chan struct{}), inner: &LocalModelDataStore{Root: t.TempDir()}}
	s := pyServer(t, `
from azureml.monitoring import ModelDataCollector
def init():
    global dc
    dc = ModelDataCollector("m")
def run(raw_data):
    dc.collect([raw_data])
    return "ok"
`, Config{DataCollection: dcConfig(store, 5), Clock: fc}, nil)
	for i := range 20 {
		if r := do(s, http.MethodPost, "/score", fmt.Sprint(i)); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	eventually(t, "every record to reach the server", func() bool { return s.DataCollectionStats().Collected == 20 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close waits for the store until the grace period of the server's
	// clock has passed: step the clock until it returns.
	for done := false; !done; {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-time.After(10 * time.Millisecond):
			fc.Step(dataCollectionClose)
		}
	}
	st := s.DataCollectionStats()
	if st.Written != 0 || st.Dropped != 20 || st.Collected != 20 {
		t.Fatalf("stats %+v: want all 20 dropped", st)
	}
}

// collect takes what v1 scripts pass (numpy arrays, pandas DataFrames,
// dicts, scalars, nested values as JSON), and add_correlations puts the
// correlation columns in front of the rows.
func TestDataCollectionInputKinds(t *testing.T) {
	root := t.TempDir()
	fc := clocktesting.NewFakeClock(time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC))
	s := pyServer(t, `
import json
import numpy as np
import pandas as pd
from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("m", designation="general", feature_names=["x", "y"], collection_name="kinds")

def run(raw_data):
    dc.collect(np.array([[1.5, 2.0], [3.0, 4.0]]))
    dc.collect(pd.DataFrame({"x": [5], "y": ["five"]}))
    dc.collect({"x": np.int64(6), "y": [1, {"a": 2}]})
    ctx = dc.collect(7, user_correlation_id="id-7")
    return dc.add_correlations([[8, 9]], ctx)
`, Config{DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0), Clock: fc}, nil)
	r := do(s, http.MethodPost, "/score", "x")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	out, ok := r.json(t).([]any)
	if !ok || len(out) != 2 || fmt.Sprint(out[0]) != "[$aml_dc_scoring_timestamp $aml_dc_correlation_id x y]" ||
		!strings.HasSuffix(fmt.Sprint(out[1]), " id-7 8 9]") {
		t.Fatalf("add_correlations returned %s", r.body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, filepath.Join(root, "modeldata", "sub", "rg", "ws", "svc", "m", "default", "general", "2026", "03", "07", "kinds.csv"))
	var got []string
	for _, l := range lines[1:] {
		f := strings.SplitN(l, ",", 3)
		if f[1] == "id-7" {
			got = append(got, "id-7,"+f[2])
		} else {
			got = append(got, f[2])
		}
	}
	want := []string{"1.5,2.0", "3.0,4.0", "5,five", `6,"[1, {""a"": 2}]"`, "id-7,7"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows %q, want %q\n%s", got, want, strings.Join(lines, "\n"))
	}
}

// A numpy array or a pandas DataFrame (v1's guide collects model.predict's
// input and output so) is written as it was before collect() took them on
// its fast path: as the slow path writes the same data seen through a
// subclass of ndarray or DataFrame, for every dtype and shape.
func TestDataCollectionNumpyFastPath(t *testing.T) {
	root := t.TempDir()
	collectOnce(t, root, `
import numpy as np
import pandas as pd
from azureml.monitoring import ModelDataCollector

class Slow(np.ndarray):
    pass

class SlowDF(pd.DataFrame):
    pass

ARRAYS = [
    np.array([[0.1, -2.5e-7, 3.0], [1e22, float("nan"), float("-inf")]]),
    np.array([[1, 2], [3, 4]], dtype=np.float32),
    np.array([[1, -2], [3, 2**40]], dtype=np.int64),
    np.array([7, 8, 9], dtype=np.uint8),
    np.array([True, False]),
    np.array([["a,b", 'q"t'], ["", "\u00e9"]]),
    np.array([206.1, 68.0]),
    np.zeros((0, 3)),
    np.zeros((2, 0)),
    np.zeros(0),
    np.array(5.5),
    np.arange(8.0).reshape(2, 2, 2),
    np.array([[1, "x"]], dtype=object),
    np.array([[1 + 2j]]),
    pd.DataFrame({"x": [1.5, 2.5], "y": ["a", "b"]}),
    pd.DataFrame(np.arange(6.0).reshape(2, 3)),
    pd.DataFrame({"n": [1, 2], "b": [True, False]}),
    pd.DataFrame({"x": []}),
]

def init():
    global fast, slow
    fast = ModelDataCollector("m", designation="fast")
    slow = ModelDataCollector("m", designation="slow")

def run(raw_data):
    for i, a in enumerate(ARRAYS):
        fast.collect(a, user_correlation_id=str(i))
        slow.collect(a.view(Slow) if isinstance(a, np.ndarray) else SlowDF(a), user_correlation_id=str(i))
    return "ok"
`)
	rows := func(designation string) []string {
		var out []string
		for _, l := range readLines(t, collectedFile(t, root, designation)) {
			out = append(out, strings.SplitN(l, ",", 2)[1]) // without the timestamp
		}
		return out
	}
	fast, slow := rows("fast"), rows("slow")
	if len(fast) < 18 || fmt.Sprint(fast) != fmt.Sprint(slow) {
		t.Fatalf("fast path rows:\n%s\nslow path rows:\n%s", strings.Join(fast, "\n"), strings.Join(slow, "\n"))
	}
	if fast[0] != "0,0.1,-2.5e-07,3.0" || fast[1] != "0,1e+22,nan,-inf" {
		t.Errorf("float rows %q", fast[:2])
	}
	if !slices.Contains(fast, "14,1.5,a") || !slices.Contains(fast, "16,2,False") {
		t.Errorf("DataFrame rows missing from %q", fast)
	}
}

// collectOnce serves one request to script, with data collection to a
// local store in root, and closes the replica once every record is written.
func collectOnce(t *testing.T, root, script string) *Server {
	t.Helper()
	s := pyServer(t, script, Config{DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0)}, nil)
	if r := do(s, http.MethodPost, "/score", "x"); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

// collectedFile is the one data.csv under root of model m's designation.
func collectedFile(t *testing.T, root, designation string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "modeldata", "*", "*", "*", "*", "m", "*", designation, "*", "*", "*", "data.csv"))
	if len(files) != 1 {
		t.Fatalf("%s: files %v", designation, files)
	}
	return files[0]
}

// A collector's own workspace, service and model version name its files'
// path in place of the service's, and feature_names=[] makes a header of
// the correlation columns alone.
func TestDataCollectionCollectorsOwnNames(t *testing.T) {
	root := t.TempDir()
	fc := clocktesting.NewFakeClock(time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC))
	s := pyServer(t, `
from azureml.monitoring import ModelDataCollector

def init():
    global dc
    dc = ModelDataCollector("m", designation="d", feature_names=[], workspace="s2/g2/w2",
                            webservice_name="svc2", model_version="4")

def run(raw_data):
    dc.collect([[raw_data]], user_correlation_id="c")
    return "ok"
`, Config{DataCollection: dcConfig(&LocalModelDataStore{Root: root}, 0), Clock: fc}, nil)
	if r := do(s, http.MethodPost, "/score", "x"); r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, filepath.Join(root, "modeldata", "s2", "g2", "w2", "svc2", "m", "4", "d", "2026", "03", "07", "data.csv"))
	if len(lines) != 2 || lines[0] != "$aml_dc_scoring_timestamp,$aml_dc_correlation_id" || !strings.HasSuffix(lines[1], ",c,x") {
		t.Fatalf("file holds %q", lines)
	}
}

// A record's file is that of the day (UTC) the record arrived, also when
// the day changes while the replica runs.
func TestDataCollectionFileFollowsTheDay(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Date(2026, 3, 7, 23, 59, 59, 0, time.FixedZone("east", 3600)))
	s := &Server{cfg: Config{Clock: fc}}
	c := &collector{cfg: dcConfig(nil, 0), srv: s, targets: map[string]*dcTarget{}}
	meta := `{"model":"m","designation":"inputs"}`
	payload := binary.BigEndian.AppendUint32(nil, uint32(len(meta)))
	payload = append(append(payload, meta...), "row\n"...)
	var got []string
	for _, step := range []time.Duration{0, time.Second, 24 * time.Hour, -48 * time.Hour} {
		fc.Step(step)
		rec, err := c.record(payload, fc.Now().Unix())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.name)
	}
	want := []string{
		"modeldata/sub/rg/ws/svc/m/default/inputs/2026/03/07/data.csv", // 22:59:59 UTC
		"modeldata/sub/rg/ws/svc/m/default/inputs/2026/03/07/data.csv",
		"modeldata/sub/rg/ws/svc/m/default/inputs/2026/03/08/data.csv",
		"modeldata/sub/rg/ws/svc/m/default/inputs/2026/03/06/data.csv",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("files\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
