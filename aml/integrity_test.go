package aml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
)

// populated builds a workspace like a user's: models of several versions,
// an environment-free set of service records with their model references,
// a deleted model (so the database has free pages) and a few hundred
// records (so it has branch pages). It returns the directory of a closed
// workspace; callers copy it (copyWS) before damaging it.
var populated = sync.OnceValues(func() (string, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "aksml-populated-")
	if err != nil {
		return "", err
	}
	populatedDir = dir
	src, err := os.MkdirTemp("", "aksml-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		return "", err
	}
	defer ws.Close()
	for i := range 12 {
		p := filepath.Join(src, fmt.Sprintf("model-%d.bin", i))
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 100+i), 0o644); err != nil {
			return "", err
		}
		m, err := ws.RegisterModel(ctx, fmt.Sprintf("m%d", i%4), p, &RegisterModelOptions{Tags: map[string]string{"i": fmt.Sprint(i)}})
		if err != nil {
			return "", err
		}
		if i%3 == 0 {
			svc := fmt.Sprintf("svc-%d", i)
			rec, _ := json.Marshal(map[string]any{"name": svc, "models": []string{m.ID()}, "primaryKey": "k" + svc})
			if err := ws.Txn(ctx, func(tx *Tx) error {
				if err := tx.Create("service", svc, rec); err != nil {
					return err
				}
				return tx.AddModelRefs(svc, []string{m.ID()})
			}); err != nil {
				return "", err
			}
		}
	}
	if err := ws.DeleteModel(ctx, "m1:2"); err != nil {
		return "", err
	}
	if err := ws.Txn(ctx, func(tx *Tx) error {
		for i := range 300 {
			if err := tx.Put("compute", fmt.Sprintf("target-%03d", i), bytes.Repeat([]byte("x"), 40)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return "", err
	}
	return dir, nil
})

// populatedDir is removed by TestMain.
var populatedDir string

// copyWS copies the populated workspace into a new temporary directory.
func copyWS(t testing.TB) string {
	t.Helper()
	src, err := populated()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// snapshot describes everything a user can read from a workspace, or
// returns the first error.
func snapshot(ctx context.Context, ws *Workspace) (string, error) {
	var b strings.Builder
	models, err := ws.ListModels(ctx, nil)
	if err != nil {
		return "", err
	}
	err = ws.View(ctx, func(tx *Tx) error {
		for _, m := range models {
			fmt.Fprintf(&b, "model %s %s %v\n", m.ID(), m.Digest, m.Tags)
			users, err := tx.ModelRefs(m.ID())
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "  users %v\n", users)
		}
		for _, kind := range []string{"service", "compute"} {
			recs, err := tx.List(kind)
			if err != nil {
				return err
			}
			for _, r := range recs {
				fmt.Fprintf(&b, "%s %s %q\n", kind, r.Name, r.Value)
			}
		}
		return nil
	})
	return b.String(), err
}

var want = sync.OnceValues(func() (string, error) {
	dir, err := populated()
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		return "", err
	}
	defer ws.Close()
	return snapshot(ctx, ws)
})

// outcome opens the workspace in dir and reads everything: "ok" when it is
// exactly the original, "dataloss" when Open or a read fails with
// DataLoss. Anything else (another error, different content) fails the
// test; a panic or a fault would kill it.
func outcome(t *testing.T, dir, what string) string {
	return outcomeW(t, dir, what, true)
}

// outcomeW is outcome; write says whether to try a write after reading.
func outcomeW(t *testing.T, dir, what string, write bool) string {
	t.Helper()
	ctx := context.Background()
	orig, err := want()
	if err != nil {
		t.Fatal(err)
	}
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		if !errors.Is(err, errcode.DataLoss) {
			t.Fatalf("%s: Open: %v, want a DataLoss error or the original content", what, err)
		}
		return "dataloss"
	}
	defer ws.Close()
	got, err := snapshot(ctx, ws)
	if err != nil {
		if !errors.Is(err, errcode.DataLoss) {
			t.Fatalf("%s: read: %v, want a DataLoss error or the original content", what, err)
		}
		return "dataloss"
	}
	if got != orig {
		t.Fatalf("%s: the workspace opened with different content and no error:\n got: %.600s\nwant: %.600s", what, got, orig)
	}
	if !write {
		return "ok"
	}
	// A write works (or finds the damage).
	if err := ws.Put(ctx, "compute", "after", []byte("x")); err != nil && !errors.Is(err, errcode.DataLoss) {
		t.Fatalf("%s: write after open: %v", what, err)
	}
	return "ok"
}

func metaPath(dir string) string { return filepath.Join(dir, metaFileName) }

func TestOpenMissingOrEmptyMetadataBesideBlobs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		break_ func(string) error
		state  string
	}{
		{"deleted", os.Remove, "is missing"},
		{"emptied", func(p string) error { return os.Truncate(p, 0) }, "is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := copyWS(t)
			blobsBefore, _ := blobFiles(dir, 0)
			if err := c.break_(metaPath(dir)); err != nil {
				t.Fatal(err)
			}
			_, err := Open(context.Background(), dir, nil)
			wantErr(t, err, errcode.DataLoss, "meta.db "+c.state, fmt.Sprintf("holds %d model files", len(blobsBefore)), "CheckWorkspace")
			// Nothing was created over the blobs, and they are all still there.
			if info, err := os.Stat(metaPath(dir)); err == nil && info.Size() > 0 {
				t.Errorf("Open wrote a new meta.db (%d bytes) over the lost one", info.Size())
			}
			if after, _ := blobFiles(dir, 0); len(after) != len(blobsBefore) {
				t.Errorf("%d blobs after Open, want %d", len(after), len(blobsBefore))
			}
		})
	}
}

// A meta.db removed while a Workspace is open is not silently recreated by
// the next write.
func TestMetadataRemovedWhileOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := copyWS(t)
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	os.Remove(metaPath(dir))
	wantErr(t, ws.Put(ctx, "compute", "x", nil), errcode.DataLoss, "removed")
	_, err = ws.ListModels(ctx, nil)
	wantErr(t, err, errcode.DataLoss)
	if _, err := os.Stat(metaPath(dir)); err == nil {
		t.Error("a write recreated meta.db")
	}
}

func TestOpenTruncatedMetadata(t *testing.T) {
	t.Parallel()
	dir := copyWS(t)
	info, err := os.Stat(metaPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	full := info.Size()
	counts := map[string]int{}
	for _, size := range []int64{1, 100, 4095, 4096, 4097, 8192, 8192 + 100, 12288, full / 2, full - 4096, full - 1} {
		d := copyWS(t)
		if err := os.Truncate(metaPath(d), size); err != nil {
			t.Fatal(err)
		}
		o := outcome(t, d, fmt.Sprintf("truncated to %d of %d bytes", size, full))
		counts[o]++
		if size == 8192 && o != "dataloss" {
			t.Errorf("truncated to 8192 bytes: %s, want DataLoss", o)
		}
	}
	t.Logf("meta.db of %d bytes truncated at 11 sizes: %v", full, counts)
}

// flipTest damages meta.db at many offsets and checks every outcome.
func flipTest(t *testing.T, n, run int, seed uint64) map[string]int {
	orig, err := os.ReadFile(metaPath(copyWS(t)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	counts := map[string]int{}
	for i := range n {
		data := slices.Clone(orig)
		off := rng.IntN(len(data) - run + 1)
		for j := range run {
			data[off+j] ^= byte(1 + rng.IntN(255))
		}
		d := t.TempDir()
		if err := os.WriteFile(metaPath(d), data, 0o600); err != nil {
			t.Fatal(err)
		}
		// The blobs matter only for GC; the metadata is what is tested.
		counts[outcomeW(t, d, fmt.Sprintf("flip %d: %d bytes at offset %d", i, run, off), i%8 == 0)]++
	}
	return counts
}

// Random single-byte changes anywhere in meta.db either leave what users
// read unchanged (free space, unused parts of pages) or are reported as
// DataLoss; none panics, crashes or silently changes content.
func TestOpenFlippedBytes(t *testing.T) {
	t.Parallel()
	// AKSML_FLIPS raises the count for a longer local run.
	n := 120
	if v, err := strconv.Atoi(os.Getenv("AKSML_FLIPS")); err == nil && v > 0 {
		n = v
	}
	counts := flipTest(t, n, 1, 1)
	t.Logf("%d single-byte flips: %v", n, counts)
	counts = flipTest(t, n/3, 64, 2)
	t.Logf("%d 64-byte runs: %v", n/3, counts)
}

// Damage to the meta page of the last commit is reported (bbolt alone
// would fall back to the previous commit and lose it silently); damage to
// the older meta page is harmless and the workspace opens.
func TestDamagedMetaPage(t *testing.T) {
	t.Parallel()
	dir := copyWS(t)
	st, err := checkMetaFile(metaPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	active := int(st.active.txid % 2)
	for _, c := range []struct {
		page int
		want string
	}{{active, "dataloss"}, {1 - active, "ok"}} {
		d := copyWS(t)
		f, err := os.OpenFile(metaPath(d), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A byte of the root bucket's page id, inside the checksummed part.
		if _, err := f.WriteAt([]byte{0x5a}, int64(c.page*st.active.pageSize+metaOff+16)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got := outcome(t, d, fmt.Sprintf("meta page %d damaged", c.page)); got != c.want {
			t.Errorf("meta page %d (active %d) damaged: %s, want %s", c.page, active, got, c.want)
		}
		if c.want == "dataloss" {
			_, err := Open(context.Background(), d, nil)
			wantErr(t, err, errcode.DataLoss, "last commit may be lost")
		}
	}
}

// A changed value inside a data page (here: a service's key in its JSON
// record) is caught by the content checksum.
func TestAlteredRecordIsDataLoss(t *testing.T) {
	t.Parallel()
	dir := copyWS(t)
	data, err := os.ReadFile(metaPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	// bbolt copies pages on write, so older copies of the record may sit
	// in free pages: change every copy.
	rec := []byte(`"primaryKey":"ksvc-3"`)
	if bytes.Count(data, rec) == 0 {
		t.Fatal("record not found in meta.db")
	}
	data = bytes.ReplaceAll(data, rec, []byte(`"primaryKey":"Ksvc-3"`))
	if err := os.WriteFile(metaPath(dir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir, nil)
	wantErr(t, err, errcode.DataLoss, "does not match the checksum")
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ws")
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Put(ctx, "service", "s", []byte("secret key")); err != nil {
		t.Fatal(err)
	}
	ws.Close()
	wantMode := func(p string, want fs.FileMode) {
		t.Helper()
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", p, got, want)
		}
	}
	wantMode(dir, 0o700)
	wantMode(metaPath(dir), 0o600)
	wantMode(filepath.Join(dir, lockFileName), 0o600)

	// A workspace made by an older version (0755, 0644) is tightened on open.
	os.Chmod(dir, 0o755)
	os.Chmod(metaPath(dir), 0o644)
	ws, err = Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	wantMode(dir, 0o700)
	wantMode(metaPath(dir), 0o600)
}

// GC removes blobs it can prove unreferenced and refuses to run when the
// metadata does not describe the blob store (replaced by a fresh one).
func TestGCOnlyRemovesProvablyUnreferencedBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := copyWS(t)
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A blob left by a registration killed before its commit: stored
	// after the metadata was created, never recorded.
	orphan := filepath.Join(dir, blobsDirName, "sha256", "ab", "ab"+strings.Repeat("0", 62))
	writeFiles(t, filepath.Dir(orphan), map[string]string{filepath.Base(orphan): "orphan"})
	res, err := ws.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// m1:2 was deleted by populate; its blob is unreferenced and recorded.
	if res.BlobsRemoved != 2 {
		t.Errorf("GC removed %d blobs, want 2 (the deleted model's and the orphan): %+v", res.BlobsRemoved, res)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphan blob still there: %v", err)
	}
	if err := ws.Check(ctx); err != nil {
		t.Fatal(err)
	}
	ws.Close()

	// Replace the metadata with a fresh workspace's: the blobs are older
	// than it and unknown to it.
	fresh := t.TempDir()
	fws, err := Open(ctx, fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	fws.Close()
	before, _ := blobFiles(dir, 0)
	old := time.Now().Add(-time.Hour)
	for enc := range before {
		p := filepath.Join(dir, blobsDirName, "sha256", enc[:2], enc)
		os.Chtimes(p, old, old)
	}
	data, _ := os.ReadFile(metaPath(fresh))
	os.WriteFile(metaPath(dir), data, 0o600)
	ws, err = Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_, err = ws.GC(ctx)
	wantErr(t, err, errcode.FailedPrecondition, fmt.Sprintf("%d files", len(before)), "looks reset")
	if after, _ := blobFiles(dir, 0); len(after) != len(before) {
		t.Errorf("GC removed blobs of a reset workspace: %d left of %d", len(after), len(before))
	}
}

// FuzzOpenMetadata opens arbitrary meta.db contents: Open and every read
// end in the original content, a DataLoss error or (for something that is
// not a workspace at all) another clear error — never a panic or a fault.
func FuzzOpenMetadata(f *testing.F) {
	dir, err := populated()
	if err != nil {
		f.Fatal(err)
	}
	orig, err := os.ReadFile(metaPath(dir))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(orig)
	f.Add(orig[:8192])
	f.Add(orig[:len(orig)/2])
	f.Add([]byte{})
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		if err := os.WriteFile(metaPath(d), data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		ws, err := Open(ctx, d, &OpenOptions{LockTimeout: time.Second})
		if err != nil {
			if errcode.Of(err) == nil {
				t.Fatalf("Open: %v carries no error code", err)
			}
			return
		}
		defer ws.Close()
		if _, err := snapshot(ctx, ws); err != nil && errcode.Of(err) == nil {
			t.Fatalf("read: %v carries no error code", err)
		}
		ws.Put(ctx, "compute", "x", []byte("y"))
		ws.GC(ctx)
	})
}

func TestCheckWorkspace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	healthy, err := CheckWorkspace(ctx, copyWS(t), &CheckOptions{VerifyBlobs: true})
	if err != nil {
		t.Fatal(err)
	}
	if !healthy.Healthy() || healthy.Metadata != "ok" || healthy.Models != 11 || healthy.IntactModels != 11 ||
		healthy.Records["service"] != 4 || healthy.Records["compute"] != 300 || healthy.Err() != nil {
		t.Errorf("healthy workspace: %s", healthy)
	}

	// Metadata lost: the blobs are what can be recovered.
	dir := copyWS(t)
	os.Remove(metaPath(dir))
	rep, err := CheckWorkspace(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metadata != "missing" || rep.Healthy() || len(rep.Orphans) != rep.Blobs || rep.Blobs == 0 ||
		!strings.Contains(rep.String(), "can be registered again") {
		t.Errorf("missing metadata: %s", rep)
	}
	wantErr(t, rep.Err(), errcode.DataLoss, "meta.db is missing")
	for _, p := range rep.Orphans {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("orphan %s: %v", p, err)
		}
	}

	// An altered record: still readable, reported as damaged.
	dir = copyWS(t)
	data, _ := os.ReadFile(metaPath(dir))
	data = bytes.ReplaceAll(data, []byte(`"primaryKey":"ksvc-3"`), []byte(`"primaryKey":"Ksvc-3"`))
	os.WriteFile(metaPath(dir), data, 0o600)
	rep, err = CheckWorkspace(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metadata != "damaged" || rep.Models != 11 || rep.Records["service"] != 4 || !strings.Contains(rep.String(), "checksum") {
		t.Errorf("altered record: %s", rep)
	}

	// Truncated: damaged, nothing readable, every blob listed.
	dir = copyWS(t)
	os.Truncate(metaPath(dir), 8192)
	rep, err = CheckWorkspace(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metadata != "damaged" || !strings.Contains(rep.String(), "truncated") || len(rep.Orphans) != rep.Blobs {
		t.Errorf("truncated: %s", rep)
	}
	t.Logf("report of a truncated workspace:\n%s", rep)
}

// A replica that writes to its model file (as the file's owner, or as
// root, which file modes do not stop) changes its own copy, never the
// blob store; the next deployment of the same content gets a fresh copy.
func TestReplicaCannotWriteIntoBlobStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	src := filepath.Join(t.TempDir(), "model.bin")
	writeFiles(t, filepath.Dir(src), map[string]string{"model.bin": "weights"})
	m, err := ws.RegisterModel(ctx, "m", src, nil)
	if err != nil {
		t.Fatal(err)
	}
	ic := &InferenceConfig{Handler: func() scoring.Handler { return echoHandler{} }}
	rt, err := Runtime(ctx, ws, "svc", []*Model{m}, ic)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(rt.Template.ModelDir, "model.bin")
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o444 {
		t.Errorf("model file mode %v, want read-only 0444", info.Mode().Perm())
	}
	os.Chmod(file, 0o644)
	if err := os.WriteFile(file, []byte("overwritten by a replica"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ws.Check(ctx); err != nil {
		t.Fatalf("the blob store changed: %v", err)
	}
	rt2, err := Runtime(ctx, ws, "svc", []*Model{m}, ic)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(rt2.Template.ModelDir, "model.bin"))
	if err != nil || string(got) != "weights" {
		t.Errorf("redeployed model file = %q, %v; want the registered content", got, err)
	}
}
