package spill

import (
	"errors"
	"io"
	"testing"
)

// TestAllowance: a file's bytes count against its allowance while it is
// open; a write past the allowance, or a body announced larger than what is
// left, is refused with ErrFull; closing gives the bytes back; the body
// reads back whole from the start.
func TestAllowance(t *testing.T) {
	a := &Allowance{Dir: t.TempDir(), Cap: 10}
	if _, err := Create(a, []byte("head"), 11); !errors.Is(err, ErrFull) {
		t.Fatalf("a body of 11 bytes under an allowance of 10: %v, want ErrFull", err)
	}
	f, err := Create(a, []byte("head"), -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Write([]byte("0123456")); err != nil {
		t.Fatal(err)
	}
	if a.Used() != 7 {
		t.Errorf("used %d, want 7", a.Used())
	}
	if err := f.Write([]byte("7890")); !errors.Is(err, ErrFull) {
		t.Errorf("a write past the allowance: %v, want ErrFull", err)
	}
	b, err := io.ReadAll(f.Reader())
	if err != nil || string(b) != "0123456" || string(f.Head) != "head" {
		t.Errorf("read back %q, %v (head %q)", b, err, f.Head)
	}
	f.Close()
	f.Close()
	if a.Used() != 0 {
		t.Errorf("used %d after close, want 0", a.Used())
	}
}
