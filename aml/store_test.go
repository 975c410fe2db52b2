package aml

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/google/go-cmp/cmp"
)

func TestRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)

	if _, err := ws.Get(ctx, "service", "a"); !errors.Is(err, errcode.NotFound) {
		t.Fatalf("Get on empty workspace: %v, want NotFound", err)
	}
	if err := ws.Put(ctx, "service", "b", []byte("B1")); err != nil {
		t.Fatal(err)
	}
	if err := ws.Put(ctx, "service", "a", []byte("A1")); err != nil {
		t.Fatal(err)
	}
	if err := ws.Put(ctx, "service", "b", []byte("B2")); err != nil {
		t.Fatal(err)
	}
	if err := ws.Put(ctx, "compute", "a", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ws.Get(ctx, "service", "b"); err != nil || string(got) != "B2" {
		t.Fatalf("Get = %q, %v; want B2", got, err)
	}
	if got, err := ws.Get(ctx, "compute", "a"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Get of empty value = %#v, %v; want empty non-nil", got, err)
	}
	wantErr(t, ws.Create(ctx, "service", "a", []byte("x")), errcode.AlreadyExists, `service "a" already exists`)
	if err := ws.Create(ctx, "service", "c", []byte("C")); err != nil {
		t.Fatal(err)
	}
	list, err := ws.List(ctx, "service")
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{{"a", []byte("A1")}, {"b", []byte("B2")}, {"c", []byte("C")}}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if list, err := ws.List(ctx, "endpoint"); err != nil || list != nil {
		t.Errorf("List of unknown kind = %v, %v; want nil, nil", list, err)
	}
	if err := ws.Delete(ctx, "service", "a"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, ws.Delete(ctx, "service", "a"), errcode.NotFound, `service "a" not found`)
	if _, err := ws.Get(ctx, "service", "a"); !errors.Is(err, errcode.NotFound) {
		t.Errorf("Get after Delete: %v, want NotFound", err)
	}
}

func TestRecordKeyValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	tests := []struct {
		rule, kind, name, want string
	}{
		{"kind must not be empty", "", "x", "record kind"},
		{"kind starts with a lower-case letter", "1svc", "x", "record kind"},
		{"kind has no upper case", "Service", "x", "record kind"},
		{"kind is at most 64 characters", strings.Repeat("k", 65), "x", "record kind"},
		{"name must not be empty", "service", "", "record name"},
		{"name is at most 1024 bytes", "service", strings.Repeat("n", 1025), "record name"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			wantErr(t, ws.Put(ctx, tt.kind, tt.name, []byte("v")), errcode.InvalidArgument, tt.want)
			_, err := ws.Get(ctx, tt.kind, tt.name)
			wantErr(t, err, errcode.InvalidArgument, tt.want)
		})
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	inc := func(old []byte, exists bool) ([]byte, error) {
		n := 0
		if exists {
			fmt.Sscan(string(old), &n)
		}
		return []byte(fmt.Sprint(n + 1)), nil
	}
	// 8 goroutines × 10 increments: no update is lost.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if err := ws.Update(ctx, "counter", "c", inc); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got, _ := ws.Get(ctx, "counter", "c"); string(got) != "80" {
		t.Fatalf("counter = %s, want 80", got)
	}

	// An error from fn aborts and is returned as is.
	abort := errcode.New(errcode.Conflict, "busy")
	err := ws.Update(ctx, "counter", "c", func([]byte, bool) ([]byte, error) { return []byte("999"), abort })
	if err != abort {
		t.Fatalf("Update returned %v, want the fn error itself", err)
	}
	if got, _ := ws.Get(ctx, "counter", "c"); string(got) != "80" {
		t.Fatalf("counter after aborted update = %s, want 80", got)
	}
	// nil deletes; deleting a missing record is a no-op.
	for range 2 {
		if err := ws.Update(ctx, "counter", "c", func([]byte, bool) ([]byte, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ws.Get(ctx, "counter", "c"); !errors.Is(err, errcode.NotFound) {
		t.Fatalf("Get after delete-by-update: %v", err)
	}
}

func TestTxnAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	err := ws.Txn(ctx, func(tx *Tx) error {
		if err := tx.Put("service", "s1", []byte("1")); err != nil {
			return err
		}
		return tx.Create("endpoint", "e1", []byte("2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failing transaction leaves nothing behind.
	err = ws.Txn(ctx, func(tx *Tx) error {
		if err := tx.Put("service", "s2", []byte("x")); err != nil {
			return err
		}
		return tx.Create("endpoint", "e1", []byte("again"))
	})
	wantErr(t, err, errcode.AlreadyExists)
	if _, err := ws.Get(ctx, "service", "s2"); !errors.Is(err, errcode.NotFound) {
		t.Fatalf("s2 survived a rolled-back transaction: %v", err)
	}
	// View cannot write.
	err = ws.View(ctx, func(tx *Tx) error { return tx.Put("service", "s3", nil) })
	wantErr(t, err, errcode.FailedPrecondition, "read-only")
}

func TestModelRefs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws, _ := newWS(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"m.pkl": "weights"})
	m1, err := ws.RegisterModel(ctx, "m", filepath.Join(dir, "m.pkl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ws.RegisterModel(ctx, "m", filepath.Join(dir, "m.pkl"), nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		rule string
		user string
		ids  []string
		code *errcode.Code
		want []string
	}{
		{"user must not be empty", "", []string{"m:1"}, errcode.InvalidArgument, []string{"user is empty"}},
		{"ids must be name:version", "service a", []string{"m"}, errcode.InvalidArgument, []string{`"m" is not of the form name:version`}},
		{"referenced versions must exist", "service a", []string{"m:1", "m:9", "x:1"}, errcode.NotFound, []string{"m:9", "x:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			wantErr(t, ws.AddModelRefs(ctx, tt.user, tt.ids), tt.code, tt.want...)
		})
	}
	if users, _ := ws.ModelRefs(ctx, "m:1"); users != nil {
		t.Fatalf("a failed AddModelRefs recorded %v", users)
	}

	if err := ws.AddModelRefs(ctx, "service svc-a", []string{m1.ID()}); err != nil {
		t.Fatal(err)
	}
	if err := ws.AddModelRefs(ctx, "service svc-b", []string{m1.ID(), m2.ID()}); err != nil {
		t.Fatal(err)
	}
	if users, _ := ws.ModelRefs(ctx, "m:1"); !cmp.Equal(users, []string{"service svc-a", "service svc-b"}) {
		t.Fatalf("ModelRefs(m:1) = %v", users)
	}
	wantErr(t, ws.DeleteModel(ctx, "m:1"), errcode.FailedPrecondition, "m:1", "service svc-a", "service svc-b")
	if err := ws.RemoveModelRefs(ctx, "service svc-a"); err != nil {
		t.Fatal(err)
	}
	if err := ws.RemoveModelRefs(ctx, "service never-existed"); err != nil {
		t.Fatalf("RemoveModelRefs of an unknown user: %v", err)
	}
	wantErr(t, ws.DeleteModel(ctx, "m:1"), errcode.FailedPrecondition, "service svc-b")
	if err := ws.RemoveModelRefs(ctx, "service svc-b"); err != nil {
		t.Fatal(err)
	}
	if err := ws.DeleteModel(ctx, "m:1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, ws.DeleteModel(ctx, "m:1"), errcode.NotFound)
	// Versions are not reused after a delete.
	m3, err := ws.RegisterModel(ctx, "m", filepath.Join(dir, "m.pkl"), nil)
	if err != nil || m3.Version != 3 {
		t.Fatalf("register after delete = %v, %v; want version 3", m3, err)
	}
}

func TestCloseAndReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Put(ctx, "service", "s", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := ws.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ws.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = ws.Get(ctx, "service", "s")
	wantErr(t, err, errcode.FailedPrecondition, "closed")

	// Two handles on one directory in one process exclude each other
	// through the file lock just as two processes do.
	a, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, filepath.Join(dir, "."), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := b.Get(ctx, "service", "s"); err != nil || string(got) != "v" {
		t.Fatalf("reopened Get = %q, %v", got, err)
	}
	if a.Dir() != b.Dir() || !filepath.IsAbs(a.Dir()) {
		t.Errorf("Dir() = %q and %q", a.Dir(), b.Dir())
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dir, &OpenOptions{LockTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	held := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- a.Txn(ctx, func(tx *Tx) error {
			close(held)
			<-release
			return tx.Put("service", "s", []byte("a"))
		})
	}()
	<-held
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = b.Get(short, "service", "s")
	wantErr(t, err, errcode.DeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not wrap context.DeadlineExceeded", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "service", "s"); err != nil || string(got) != "a" {
		t.Fatalf("Get after the lock was released = %q, %v", got, err)
	}

	// LockTimeout gives Unavailable.
	c, err := Open(ctx, dir, &OpenOptions{LockTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held2 := make(chan struct{})
	release2 := make(chan struct{})
	go func() {
		done <- a.Txn(ctx, func(tx *Tx) error { close(held2); <-release2; return nil })
	}()
	<-held2
	_, err = c.Get(ctx, "service", "s")
	close(release2)
	<-done
	wantErr(t, err, errcode.Unavailable, "locked by another process")
}

// A workspace whose creation was killed before the metadata file got its
// first pages opens cleanly.
func TestOpenEmptyMetadataFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"meta.db": ""})
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.Put(ctx, "service", "s", []byte("v")); err != nil {
		t.Fatal(err)
	}
}
