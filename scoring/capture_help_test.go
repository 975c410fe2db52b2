package scoring

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A helper takes only when enough records wait; what it takes stays
// counted against the buffer's limits (as held) until the writer takes,
// and the writer's wait returns for it even with the log empty.
func TestCaptureLogHelpedRecordsStayCounted(t *testing.T) {
	q := newCaptureLog(10)
	put := func(k int) bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		ok, _ := q.roomLocked(k, 4*k)
		if ok {
			at := q.beginLocked()
			for range k {
				q.buf = binary.BigEndian.AppendUint32(q.buf, 7)
			}
			q.endLocked(at, k)
		}
		return ok
	}
	if !put(3) {
		t.Fatal("3 records refused by an empty log of 10")
	}
	if e := q.takeHelped(4); e != nil {
		t.Fatalf("a helper took %d bytes with 3 records waiting, fewer than its minimum of 4", len(e))
	}
	if !put(3) {
		t.Fatal("3 more records refused")
	}
	if e := q.takeHelped(4); len(e) != 2*(4+12) {
		t.Fatalf("a helper took %d bytes, want the two entries of 3 records (32 bytes)", len(e))
	}
	// 6 held, none waiting: 4 more fit, 5 do not.
	if put(5) {
		t.Fatal("5 records taken with 6 held by a helper: the limit is 10")
	}
	if !put(4) {
		t.Fatal("4 records refused with 6 held: the limit is 10")
	}
	if _, n := q.take(); n != 4 {
		t.Fatalf("the writer took %d records, want the 4 waiting", n)
	}
	// The writer's take makes the held records its own: the log is free.
	if !put(10) {
		t.Fatal("10 records refused after the writer took")
	}
	q.take()
	put(5)
	q.takeHelped(1)
	woke := make(chan bool)
	go func() { woke <- q.wait() }()
	if !<-woke {
		t.Fatal("wait returned false with records held by a helper")
	}
	q.take()
	put(2)
	q.close()
	if e := q.takeHelped(1); e != nil {
		t.Fatal("a helper took from a closed log: the writer's last take would miss it")
	}
	if _, n := q.take(); n != 2 {
		t.Fatalf("the writer took %d records after close, want 2", n)
	}
	if q.wait() {
		t.Fatal("wait returned true for a closed, empty log")
	}
}

// Connections that help (as the lean engine's do after each answer)
// format the records; the writers write them, every one, once, in the
// order they came.
func TestCaptureHelpersFormatWritersWrite(t *testing.T) {
	dir := t.TempDir()
	telPath := filepath.Join(dir, "telemetry.jsonl")
	sink, err := NewJSONLinesSink(telPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	s := captureServer(t, dir, &DataCollection{Store: &LocalModelDataStore{Root: filepath.Join(dir, "ws")}, Service: "capture"},
		&Telemetry{Sink: sink, Service: "capture", Version: "1", Replica: "capture-0"})
	inputs, predictions, prints := captureFrames(t)
	held := []sideFrame{{kindRecord, inputs}, {kindRecord, predictions}, {kindPrints, prints}}
	const n = 3000
	helped := false
	for i := range n {
		s.takeSides(held)
		s.tel.offerRequest(time.Now(), time.Millisecond, 200, "POST", "/score", fmt.Sprint("req-", i), "", traceContext{})
		s.helpCapture()
		s.dc.q.mu.Lock()
		s.tel.q.mu.Lock()
		helped = helped || s.dc.q.held > 0 || s.tel.q.held > 0
		s.tel.q.mu.Unlock()
		s.dc.q.mu.Unlock()
	}
	if !helped {
		t.Fatal("no helper took any record")
	}
	s.dc.close()
	s.tel.close()
	if st := s.dc.stats(); st != (DataCollectionStats{Collected: 2 * n, Written: 2 * n}) {
		t.Fatalf("data collection %+v, want %d collected and written", st, 2*n)
	}
	if st := s.tel.stats(); st != (TelemetryStats{Recorded: 2 * n, Sent: 2 * n}) {
		t.Fatalf("telemetry %+v, want %d recorded and sent", st, 2*n)
	}
	for _, d := range []string{"inputs", "predictions"} {
		files, _ := filepath.Glob(filepath.Join(dir, "ws", "modeldata", "*", "*", "*", "capture", "echo", "*", d, "*", "*", "*", "*.csv"))
		if len(files) != 1 {
			t.Fatalf("%s: files %v, want one", d, files)
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != 1+2*n || !strings.HasPrefix(lines[0], "$aml_dc_scoring_timestamp,") {
			t.Fatalf("%s: %d lines, want a header and %d rows; first %q", d, len(lines), 2*n, lines[0])
		}
		for i, l := range lines[1:] {
			if want := []string{"1.5,2,x", "3,4.25,y"}[i%2]; !strings.HasSuffix(l, ","+want) {
				t.Fatalf("%s: row %d is %q, want it to end with %q", d, i+1, l, want)
			}
		}
	}
	recs, err := ReadTelemetry(telPath)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for _, r := range recs {
		if r.Kind != TelemetryRequest {
			continue
		}
		if want := fmt.Sprint("req-", next); r.RequestID != want {
			t.Fatalf("request record %d has id %q, want %q: out of order or lost", next, r.RequestID, want)
		}
		next++
	}
	if next != n || len(recs) != 2*n {
		t.Fatalf("%d records, %d of them requests; want %d and %d", len(recs), next, 2*n, n)
	}
}

// stuckStore holds every Append until release is closed, and says when
// the first one started.
type stuckStore struct {
	started chan struct{}
	once    sync.Once
	release chan struct{}
	inner   ModelDataStore
}

func (s *stuckStore) Append(ctx context.Context, name string, header, rows []byte) error {
	s.once.Do(func() { close(s.started) })
	<-s.release
	return s.inner.Append(ctx, name, header, rows)
}

// A helper never waits for the store: with the store stuck in the
// writer's hands (the writer holds the formatting while it writes),
// connections that help return at once, and the records that do not fit
// are dropped and counted, never waited for.
func TestCaptureHelpersNeverWaitForTheStore(t *testing.T) {
	dir := t.TempDir()
	store := &stuckStore{started: make(chan struct{}), release: make(chan struct{}), inner: &LocalModelDataStore{Root: filepath.Join(dir, "ws")}}
	s := captureServer(t, dir, &DataCollection{Store: store, Service: "capture", Buffer: 1000}, nil)
	inputs, predictions, _ := captureFrames(t)
	held := []sideFrame{{kindRecord, inputs}, {kindRecord, predictions}}
	// Records until the writer is stuck in the store.
	for stuck := false; !stuck; {
		s.takeSides(held)
		s.helpCapture()
		select {
		case <-store.started:
			stuck = true
		default:
		}
	}
	// Were a helper to call the store, this would hang.
	for range 1000 {
		s.takeSides(held)
		s.helpCapture()
	}
	st := s.dc.stats()
	if st.Dropped == 0 {
		t.Fatalf("%+v: nothing dropped with the store stuck and a buffer of 1000", st)
	}
	close(store.release)
	s.dc.close()
	st = s.dc.stats()
	if st.Written+st.Dropped != st.Collected || st.Failed != 0 {
		t.Fatalf("%+v: want written + dropped == collected", st)
	}
	// Every row written is whole.
	files, _ := filepath.Glob(filepath.Join(dir, "ws", "modeldata", "*", "*", "*", "capture", "echo", "*", "*", "*", "*", "*", "*.csv"))
	rows := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if l := sc.Text(); !strings.HasPrefix(l, "$aml") {
				if strings.Count(l, ",") != 4 {
					t.Errorf("%s: row %q is not whole", f, l)
				}
				rows++
			}
		}
		fh.Close()
	}
	if int64(rows) != 2*st.Written {
		t.Fatalf("%d rows in the files, want 2 a record written (%d)", rows, st.Written)
	}
}
