package errcode_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/aksml/aksml/errcode"
)

func TestCodesMatchWithErrorsIs(t *testing.T) {
	t.Parallel()
	err := errcode.Errorf(errcode.NotFound, "model %q version %d not found", "iris", 3)
	if !errors.Is(err, errcode.NotFound) {
		t.Fatalf("errors.Is(NotFound) = false for %v", err)
	}
	if errors.Is(err, errcode.Conflict) {
		t.Fatalf("errors.Is(Conflict) = true for %v", err)
	}
	if got, want := err.Error(), `model "iris" version 3 not found`; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	if errcode.Of(err) != errcode.NotFound {
		t.Fatalf("Of = %v", errcode.Of(err))
	}
}

func TestWrapKeepsCause(t *testing.T) {
	t.Parallel()
	cause := &fs.PathError{Op: "open", Path: "score.py", Err: fs.ErrNotExist}
	err := fmt.Errorf("inference config: %w", errcode.Wrap(errcode.InvalidArgument, cause))
	if !errors.Is(err, errcode.InvalidArgument) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lost a link in %v", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "score.py" {
		t.Fatalf("errors.As lost the path error")
	}
	if errcode.Wrap(errcode.Internal, nil) != nil {
		t.Fatal("Wrap(nil) != nil")
	}
	if errcode.Of(errors.New("plain")) != nil {
		t.Fatal("plain error has a code")
	}
	joined := errors.Join(errcode.New(errcode.InvalidArgument, "a"), errcode.New(errcode.InvalidArgument, "b"))
	if !errors.Is(joined, errcode.InvalidArgument) || errcode.Of(joined) != errcode.InvalidArgument {
		t.Fatal("joined errors lost their code")
	}
}

func ExampleErrorf() {
	err := errcode.Errorf(errcode.InvalidArgument, "cpu_cores_limit %v is below cpu_cores %v", 0.5, 1)
	fmt.Println(errors.Is(err, errcode.InvalidArgument), errcode.Of(err), err)
	// Output: true InvalidArgument cpu_cores_limit 0.5 is below cpu_cores 1
}

func TestSplit(t *testing.T) {
	t.Parallel()
	a := errcode.New(errcode.InvalidArgument, "a")
	b := errcode.New(errcode.InvalidArgument, "b")
	c := errcode.Errorf(errcode.NotFound, "c: %w", errors.New("cause"))
	got := errcode.Split(errors.Join(a, errors.Join(b, c)))
	if len(got) != 3 || got[0] != a || got[1] != b || got[2] != c {
		t.Fatalf("Split = %v, want [a b c]", got)
	}
	if got := errcode.Split(c); len(got) != 1 || got[0] != c {
		t.Errorf("Split(one coded error) = %v", got)
	}
	if errcode.Split(nil) != nil {
		t.Error("Split(nil) != nil")
	}
}
