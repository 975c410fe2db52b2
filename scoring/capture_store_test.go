package scoring

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readFile reads a file of the test, or fails it.
func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// openFiles is the number of files a local store holds open.
func openFiles(l *LocalModelDataStore) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.files)
}

// A local store keeps the file it appends to open: the header is written
// once, when the file is new, and Close closes the file, after which an
// Append opens it again (without a second header).
func TestLocalStoreHoldsFilesOpen(t *testing.T) {
	root := t.TempDir()
	l := &LocalModelDataStore{Root: root}
	ctx := context.Background()
	const name = "modeldata/a/b/c/2026/03/07/data.csv"
	for i := range 3 {
		if err := l.Append(ctx, name, []byte("h\n"), []byte(fmt.Sprintf("r%d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := openFiles(l); n != 1 {
		t.Fatalf("%d files open, want 1", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := openFiles(l); n != 0 {
		t.Fatalf("%d files open after Close, want 0", n)
	}
	if err := l.Append(ctx, name, []byte("h\n"), []byte("r3\n")); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := readFile(t, filepath.Join(root, filepath.FromSlash(name))); got != "h\nr0\nr1\nr2\nr3\n" {
		t.Fatalf("file %q", got)
	}
}

// Two stores on one directory (two replicas, two processes) append to the
// same files: the header once, every row.
func TestLocalStoresShareADirectory(t *testing.T) {
	root := t.TempDir()
	a, b := &LocalModelDataStore{Root: root}, &LocalModelDataStore{Root: root}
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	const name = "modeldata/x/data.csv"
	for i := range 4 {
		for _, l := range []*LocalModelDataStore{a, b, b} {
			if err := l.Append(ctx, name, []byte("h\n"), []byte(fmt.Sprintf("r%d\n", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := "h\n" + strings.Repeat("r0\n", 3) + strings.Repeat("r1\n", 3) + strings.Repeat("r2\n", 3) + strings.Repeat("r3\n", 3)
	if got := readFile(t, filepath.Join(root, "modeldata", "x", "data.csv")); got != want {
		t.Fatalf("file %q, want %q", got, want)
	}
}

// A file removed, renamed or emptied while the store holds it open: the
// next rows go to the file at the path, header first when it is new or
// empty, as when every Append opened the file.
func TestLocalStoreFollowsThePath(t *testing.T) {
	root := t.TempDir()
	l := &LocalModelDataStore{Root: root}
	defer l.Close()
	ctx := context.Background()
	const name = "modeldata/d/data.csv"
	p := filepath.Join(root, "modeldata", "d", "data.csv")
	appendRow := func(row string) {
		t.Helper()
		if err := l.Append(ctx, name, []byte("h\n"), []byte(row)); err != nil {
			t.Fatal(err)
		}
	}
	appendRow("1\n")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	appendRow("2\n")
	if got := readFile(t, p); got != "h\n2\n" {
		t.Fatalf("after a remove: %q", got)
	}
	if err := os.Rename(p, p+".old"); err != nil {
		t.Fatal(err)
	}
	appendRow("3\n")
	if got, old := readFile(t, p), readFile(t, p+".old"); got != "h\n3\n" || old != "h\n2\n" {
		t.Fatalf("after a rename: %q, and the renamed file %q", got, old)
	}
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendRow("4\n")
	if got := readFile(t, p); got != "h\n4\n" {
		t.Fatalf("after a truncate: %q", got)
	}
	// The directories removed too.
	if err := os.RemoveAll(filepath.Join(root, "modeldata")); err != nil {
		t.Fatal(err)
	}
	appendRow("5\n")
	if got := readFile(t, p); got != "h\n5\n" {
		t.Fatalf("after the directory's removal: %q", got)
	}
}

// The store holds at most maxLocalFiles open (the least recently appended
// to is closed for a new one), and closes those left idle.
func TestLocalStoreBoundsAndClosesIdleFiles(t *testing.T) {
	root := t.TempDir()
	l := &LocalModelDataStore{Root: root}
	defer l.Close()
	ctx := context.Background()
	name := func(i int) string { return fmt.Sprintf("modeldata/f%d/data.csv", i) }
	for round := range 2 {
		for i := range maxLocalFiles + 10 {
			if err := l.Append(ctx, name(i), []byte("h\n"), []byte(fmt.Sprintf("%d\n", round))); err != nil {
				t.Fatal(err)
			}
			if n := openFiles(l); n > maxLocalFiles {
				t.Fatalf("%d files open, at most %d wanted", n, maxLocalFiles)
			}
		}
	}
	for i := range maxLocalFiles + 10 {
		if got := readFile(t, filepath.Join(root, filepath.FromSlash(name(i)))); got != "h\n0\n1\n" {
			t.Fatalf("%s: %q", name(i), got)
		}
	}
	// Files not appended to for localFileIdle are closed; the others
	// stay open.
	l.mu.Lock()
	k := 0
	for _, lf := range l.files {
		if k%2 == 0 {
			lf.used = time.Now().Add(-localFileIdle)
		}
		k++
	}
	l.mu.Unlock()
	l.closeIdle()
	if n := openFiles(l); n != maxLocalFiles/2 {
		t.Fatalf("%d files open after the idle ones were closed, want %d", n, maxLocalFiles/2)
	}
	l.mu.Lock()
	for _, lf := range l.files {
		lf.used = time.Now().Add(-localFileIdle)
	}
	l.mu.Unlock()
	l.closeIdle()
	if n := openFiles(l); n != 0 {
		t.Fatalf("%d files open, want none", n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sweep != nil {
		t.Fatal("the idle sweep is still set with no file open")
	}
}

// When a replica closes, the files its local store holds open are closed.
func TestDataCollectionCloseClosesTheStoresFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte("def init(): pass\ndef run(d): return d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := &LocalModelDataStore{Root: dir}
	s, err := NewServer(Config{EntryScript: "score.py", SourceDir: dir, DataCollection: &DataCollection{Store: store}})
	if err != nil {
		t.Fatal(err)
	}
	inputs, predictions, _ := captureFrames(t)
	for range 10 {
		s.takeSide(kindRecord, inputs)
		s.takeSide(kindRecord, predictions)
	}
	s.dc.close()
	if st := s.dc.stats(); st != (DataCollectionStats{Collected: 20, Written: 20}) {
		t.Fatalf("stats %+v", st)
	}
	if n := openFiles(store); n != 0 {
		t.Fatalf("%d files open after the replica closed", n)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".csv") {
			files = append(files, readFile(t, p))
		}
		return nil
	})
	if len(files) != 2 || strings.Count(files[0], "\n") != 21 || strings.Count(files[1], "\n") != 21 {
		t.Fatalf("files %q: want two of a header and 20 rows", files)
	}
}

// The buffer between the request path and a writer: entries in order and
// whole across swaps, a full log refuses, a closed one refuses and tells
// so, and the writer takes what is left after close.
func TestCaptureLog(t *testing.T) {
	const limit = 1000
	q := newCaptureLog(limit)
	// put adds an entry of k records holding the number v, k times.
	put := func(v, k int) (ok, closed bool) {
		q.mu.Lock()
		defer q.mu.Unlock()
		if ok, closed = q.roomLocked(k, 4+4*k); ok {
			at := q.beginLocked()
			for range k {
				q.buf = binary.BigEndian.AppendUint32(q.buf, uint32(v))
			}
			q.endLocked(at, k)
		}
		return ok, closed
	}
	// take checks the entries waiting and returns the next number wanted.
	take := func(want int) int {
		entries, n := q.take()
		got := 0
		for len(entries) > 0 {
			var e []byte
			e, entries = nextEntry(entries)
			k := len(e) / 4
			for i := range k {
				if v := int(binary.BigEndian.Uint32(e[4*i:])); v != want || k != want%3+1 {
					t.Fatalf("entry of %d records holds %d, want %d records of %d", k, v, want%3+1, want)
				}
			}
			got += k
			want++
		}
		if got != n {
			t.Fatalf("took %d records, counted %d", got, n)
		}
		return want
	}
	next, want := 0, 0
	for round := range 20 {
		for range 37 * round {
			if ok, _ := put(next, next%3+1); ok {
				next++
			} else if q.len()+next%3+1 <= limit {
				t.Fatalf("refused %d records at %d waiting", next%3+1, q.len())
			} else {
				break
			}
		}
		want = take(want)
		if q.len() != 0 || want != next {
			t.Fatalf("%d waiting after a take; took up to %d of %d", q.len(), want, next)
		}
	}
	for {
		if ok, _ := put(next, next%3+1); !ok {
			break
		}
		next++
	}
	if q.len() > limit || q.len() < limit-2 {
		t.Fatalf("%d waiting in a full log of %d", q.len(), limit)
	}
	if ok, closed := put(0, limit); ok || closed {
		t.Fatalf("a full log: ok %v, closed %v", ok, closed)
	}
	if !q.close() || q.close() {
		t.Fatal("close: want true once, then false")
	}
	if ok, closed := put(0, 1); ok || !closed {
		t.Fatalf("a closed log: ok %v, closed %v", ok, closed)
	}
	if !q.wait() {
		t.Fatal("wait: false with records waiting after close")
	}
	if want = take(want); want != next {
		t.Fatalf("took up to %d, want %d", want, next)
	}
	if q.wait() {
		t.Fatal("wait: true on a closed, empty log")
	}
}

// A log refuses records that would take its bytes past its bound, however
// few records it holds.
func TestCaptureLogBytesBound(t *testing.T) {
	q := newCaptureLog(1000)
	q.maxBytes = 100
	big := make([]byte, 40)
	n := 0
	for {
		q.mu.Lock()
		ok, closed := q.roomLocked(1, 4+len(big))
		if ok {
			at := q.beginLocked()
			q.buf = append(q.buf, big...)
			q.endLocked(at, 1)
		}
		q.mu.Unlock()
		if closed {
			t.Fatal("refused as closed")
		}
		if !ok {
			break
		}
		n++
	}
	if n != 2 || len(q.buf) > q.maxBytes {
		t.Fatalf("took %d records of 44 bytes (%d bytes) under a bound of %d", n, len(q.buf), q.maxBytes)
	}
	// Once the writer took them, there is room again.
	q.take()
	q.mu.Lock()
	ok, _ := q.roomLocked(1, 44)
	q.mu.Unlock()
	if !ok {
		t.Fatal("no room in an empty log")
	}
}

// The writer sleeps while the log is empty and wakes for a record, and
// for close.
func TestCaptureLogWakesTheWriter(t *testing.T) {
	q := newCaptureLog(4)
	got := make(chan byte)
	go func() {
		for q.wait() {
			entries, _ := q.take()
			e, _ := nextEntry(entries)
			got <- e[0]
		}
		close(got)
	}()
	for i := range byte(3) {
		time.Sleep(time.Millisecond)
		q.mu.Lock()
		at := q.beginLocked()
		q.buf = append(q.buf, i)
		q.endLocked(at, 1)
		q.mu.Unlock()
		if v := <-got; v != i {
			t.Fatalf("took %d, want %d", v, i)
		}
	}
	q.close()
	if _, ok := <-got; ok {
		t.Fatal("the writer took a record after close")
	}
}

// takeRecords takes the records waiting in t's buffer, as the exporter
// makes them.
func (t *telemetry) takeRecords() []TelemetryRecord {
	entries, _ := t.q.take()
	return t.records(nil, entries, false)
}
