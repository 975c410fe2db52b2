package aml

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	bolt "go.etcd.io/bbolt"
)

// testdata/format2/ws is a workspace written by aksml before format 3
// (models of two names, a deleted version, changed tags, an environment,
// three services with model references, 149 compute records); want.txt is
// what that version read from it (snapshotAll). See testdata/format2/README.

// format2 copies the format-2 workspace into a new directory.
func format2(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("testdata", "format2", "ws"))); err != nil {
		t.Fatal(err)
	}
	return dst
}

func format2Want(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "format2", "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshotAll is snapshot and the environments.
func snapshotAll(ctx context.Context, ws *Workspace) (string, error) {
	s, err := snapshot(ctx, ws)
	if err != nil {
		return "", err
	}
	envs, err := ws.ListEnvironments(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(s)
	for _, e := range envs {
		fmt.Fprintf(&b, "environment %s:%d %v\n", e.Name, e.Version, e.EnvironmentVariables)
	}
	return b.String(), nil
}

// rawMeta reads the format marker and the stored content sum of the
// workspace in dir straight from its bbolt file.
func rawMeta(t testing.TB, dir string) (format, sum string) {
	t.Helper()
	db, err := bolt.Open(metaPath(dir), 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktMeta)
		format, sum = string(b.Get(keyFormat)), string(b.Get(keySum))
		return nil
	})
	return format, sum
}

// rawUpdate changes the bbolt file of the workspace in dir directly, as
// damage that leaves a valid bbolt file would.
func rawUpdate(t testing.TB, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(metaPath(dir), 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// A workspace of format 2 opens with everything it held, is upgraded to
// format 3 by Open, and works on: writes, reopening, GC.
func TestUpgradeFormat2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := format2(t)
	if f, sum := rawMeta(t, dir); f != "2" || len(sum) != 64 {
		t.Fatalf("fixture: format %q, sum %q; want format 2 and a hex SHA-256", f, sum)
	}
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	f, sum := rawMeta(t, dir)
	if f != strconv.Itoa(formatVersion) || !strings.HasPrefix(sum, sumPrefix) || len(sum) != len(sumPrefix)+64 {
		t.Fatalf("after Open: format %q, sum %q; want format %d and a sum of format 3", f, sum, formatVersion)
	}
	got, err := snapshotAll(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if want := format2Want(t); got != want {
		t.Fatalf("the upgraded workspace reads\n%s\nwant (as format 2 was read)\n%s", got, want)
	}
	// It works on, and its sum keeps matching from another handle.
	if err := ws.Put(ctx, "compute", "target-007", []byte("back")); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "new.bin")
	writeFiles(t, filepath.Dir(src), map[string]string{"new.bin": "new weights"})
	m, err := ws.RegisterModel(ctx, "m1", src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 4 {
		t.Errorf("new version of m1: %d, want 4 (m1:3 was deleted; versions are not reused)", m.Version)
	}
	ws2, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	if v, err := ws2.Get(ctx, "compute", "target-007"); err != nil || string(v) != "back" {
		t.Errorf("reopened: target-007 = %q, %v", v, err)
	}
	// GC removes the one file no version uses (that of the deleted m1:3),
	// which format 2 had recorded.
	res, err := ws2.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsRemoved != 1 {
		t.Errorf("GC removed %d files, want 1 (the deleted version's)", res.BlobsRemoved)
	}
}

// A damaged workspace of format 2 is refused, and left as it was: it is
// not upgraded (which would bless the damage with a new sum).
func TestUpgradeRefusesDamagedFormat2(t *testing.T) {
	t.Parallel()
	dir := format2(t)
	data, err := os.ReadFile(metaPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	rec := []byte(`"primaryKey":"ksvc-1"`)
	if bytes.Count(data, rec) == 0 {
		t.Fatal("record not found in meta.db")
	}
	data = bytes.ReplaceAll(data, rec, []byte(`"primaryKey":"Ksvc-1"`))
	if err := os.WriteFile(metaPath(dir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir, nil)
	wantErr(t, err, errcode.DataLoss, "does not match the checksum")
	after, err := os.ReadFile(metaPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, data) {
		t.Error("meta.db changed: a damaged workspace was written to")
	}
}

// The rules of format 3's sum: it must be there, and a workspace whose
// format marker or sum is of another format does not pass.
func TestFormat3SumRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		damage func(tx *bolt.Tx) error
		want   string
	}{
		{"sum removed", func(tx *bolt.Tx) error { return tx.Bucket(bktMeta).Delete(keySum) },
			"checksum of its last commit is missing"},
		{"format marker says 2", func(tx *bolt.Tx) error { return tx.Bucket(bktMeta).Put(keyFormat, []byte("2")) },
			"does not match the checksum"},
		{"a sum of format 2", func(tx *bolt.Tx) error {
			return tx.Bucket(bktMeta).Put(keySum, []byte(contentSumV2(tx)))
		}, "does not match the checksum"},
		{"a model reference removed", func(tx *bolt.Tx) error { return tx.Bucket(bktModelRefs).Delete([]byte("svc-3")) },
			"does not match the checksum"},
		{"a sequence number changed", func(tx *bolt.Tx) error {
			return tx.Bucket(bktModels).Bucket([]byte("m0")).SetSequence(1)
		}, "does not match the checksum"},
		{"a record duplicated into another kind", func(tx *bolt.Tx) error {
			v := tx.Bucket(bktRecords).Bucket([]byte("service")).Get([]byte("svc-3"))
			b, err := tx.Bucket(bktRecords).CreateBucketIfNotExists([]byte("endpoint"))
			if err != nil {
				return err
			}
			return b.Put([]byte("svc-3"), v)
		}, "does not match the checksum"},
		{"a bucket nested deeper", func(tx *bolt.Tx) error {
			_, err := tx.Bucket(bktModels).Bucket([]byte("m0")).CreateBucket([]byte("x"))
			return err
		}, "does not match the checksum"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := copyWS(t)
			if f, sum := rawMeta(t, dir); f != "3" || !strings.HasPrefix(sum, sumPrefix) {
				t.Fatalf("populated workspace: format %q, sum %q", f, sum)
			}
			rawUpdate(t, dir, c.damage)
			before, _ := os.ReadFile(metaPath(dir))
			_, err := Open(context.Background(), dir, nil)
			wantErr(t, err, errcode.DataLoss, c.want)
			after, _ := os.ReadFile(metaPath(dir))
			if !bytes.Equal(before, after) {
				t.Error("meta.db changed: a damaged workspace was written to")
			}
		})
	}
}

// fullSumOf computes the content sum of the workspace from every item.
func fullSumOf(t *testing.T, ws *Workspace) sum256 {
	t.Helper()
	var s sum256
	if err := ws.view(context.Background(), func(tx *bolt.Tx) error { s = fullSum(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return s
}

// Every kind of write keeps the sum it updates item by item equal to the
// sum of every item (TestMain also has every commit compare them).
func TestIncrementalSumMatchesFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.bin": "a", "b.bin": "b"})
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got, want := ws.sum, fullSumOf(t, ws); !ws.sum.v3 || got.sum != want {
			t.Fatalf("after %s: the sum kept is %x, the sum of every item %x", what, got.sum.encode(), want.encode())
		}
	}
	step("Put", ws.Put(ctx, "service", "a", []byte("1")))
	step("Put again", ws.Put(ctx, "service", "a", []byte("2")))
	step("empty value", ws.Put(ctx, "service", "e", []byte{}))
	step("Txn touching one key many times", ws.Txn(ctx, func(tx *Tx) error {
		for i := range 5 {
			if err := tx.Put("service", "b", []byte(strconv.Itoa(i))); err != nil {
				return err
			}
		}
		if err := tx.Delete("service", "b"); err != nil {
			return err
		}
		if err := tx.Create("service", "b", []byte("x")); err != nil {
			return err
		}
		if err := tx.Put("endpoint", "new-kind", []byte("y")); err != nil {
			return err
		}
		return tx.Update("service", "a", func([]byte, bool) ([]byte, error) { return nil, nil })
	}))
	m1, err := ws.RegisterModel(ctx, "m", filepath.Join(src, "a.bin"), nil)
	step("RegisterModel", err)
	_, err = ws.RegisterModel(ctx, "m", filepath.Join(src, "b.bin"), nil)
	step("RegisterModel, second version", err)
	_, err = ws.RegisterModel(ctx, "other", filepath.Join(src, "a.bin"), nil)
	step("RegisterModel, same file", err)
	_, err = ws.UpdateModelTags(ctx, m1.ID(), map[string]string{"k": "v"}, nil)
	step("UpdateModelTags", err)
	step("CreateWithModelRefs", ws.CreateWithModelRefs(ctx, "service", "svc", []byte("{}"), "svc", []string{m1.ID()}))
	step("AddModelRefs", ws.AddModelRefs(ctx, "svc", []string{"m:2"}))
	step("DeleteWithModelRefs", ws.DeleteWithModelRefs(ctx, "service", "svc", "svc"))
	step("DeleteModel", ws.DeleteModel(ctx, "m:2"))
	_, err = ws.RegisterEnvironment(ctx, &Environment{Name: "env"})
	step("RegisterEnvironment", err)
	_, err = ws.RegisterEnvironment(ctx, &Environment{Name: "env"})
	step("RegisterEnvironment, unchanged", err)
	_, err = ws.RegisterEnvironment(ctx, &Environment{Name: "env", EnvironmentVariables: map[string]string{"A": "1"}})
	step("RegisterEnvironment, changed", err)
	step("failed Txn", func() error {
		err := ws.Txn(ctx, func(tx *Tx) error {
			tx.Put("service", "rolled-back", []byte("z"))
			return errors.New("no")
		})
		if err == nil {
			return errors.New("Txn succeeded")
		}
		return nil
	}())
	_, err = ws.GC(ctx)
	step("GC", err)
}

// upgradeChild opens the workspace in dir (upgrading it), says so, and
// writes records until it is killed.
func upgradeChild(dir string) int {
	ctx := context.Background()
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 2
	}
	fmt.Println("opened")
	for i := 0; ; i++ {
		if err := ws.Put(ctx, "child", strconv.Itoa(i), bytes.Repeat([]byte{'v'}, i%200)); err != nil {
			fmt.Fprintln(os.Stderr, "put:", err)
			return 2
		}
	}
}

// A process killed at a random point while it upgrades a workspace of
// format 2, or while it writes just after, leaves a workspace that opens
// with everything format 2 held: either still of format 2 (upgraded by the
// next Open) or of format 3. AKSML_KILLS sets the number of kills (default
// 40).
func TestIntegrationKillDuringUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dozens of processes")
	}
	t.Parallel()
	kills := 40
	if v, err := strconv.Atoi(os.Getenv("AKSML_KILLS")); err == nil && v > 0 {
		kills = min(v, 200)
	}
	ctx := context.Background()
	want := format2Want(t)
	start := func(dir string) (*exec.Cmd, *bufio.Reader, *strings.Builder) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "AKSML_AML_CHILD=upgrade", "AKSML_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, bufio.NewReader(out), &stderr
	}
	kill := func(cmd *exec.Cmd, stderr *strings.Builder) {
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child ended with %v before the kill; stderr:\n%s", err, stderr.String())
		}
	}
	// How long a child takes to start and upgrade: the kills land up to
	// twice that after the start.
	cmd, out, stderr := start(format2(t))
	t0 := time.Now()
	if line, _ := out.ReadString('\n'); line != "opened\n" {
		kill(cmd, stderr)
		t.Fatalf("child said %q; stderr:\n%s", line, stderr.String())
	}
	span := 2 * time.Since(t0)
	kill(cmd, stderr)

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	stillOld := 0
	for i := range kills {
		dir := format2(t)
		cmd, _, stderr := start(dir)
		time.Sleep(time.Duration(rng.Int64N(int64(span))))
		kill(cmd, stderr)
		if f, _ := rawMeta(t, dir); f == "2" {
			stillOld++
		}
		ws, err := Open(ctx, dir, nil)
		if err != nil {
			t.Fatalf("kill %d: reopen: %v", i, err)
		}
		got, err := snapshotAll(ctx, ws)
		if err == nil {
			err = ws.Check(ctx)
		}
		ws.Close()
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		if got != want {
			t.Fatalf("kill %d: the workspace reads\n%s\nwant\n%s", i, got, want)
		}
		if f, _ := rawMeta(t, dir); f != strconv.Itoa(formatVersion) {
			t.Fatalf("kill %d: format %s after reopening, want %d", i, f, formatVersion)
		}
	}
	t.Logf("%d kills within %v of the start: %d left format 2, %d format 3", kills, span, stillOld, kills-stillOld)
}
