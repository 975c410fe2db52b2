//go:build unix

package rawsys

import (
	"os"
	"syscall"
	"testing"
)

func TestReadWrite(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// Each Fd call makes its file blocking: take them once, then make the
	// reader non-blocking to see EAGAIN.
	rfd, wfd := r.Fd(), w.Fd()
	if err := syscall.SetNonblock(int(rfd), true); err != nil {
		t.Fatal(err)
	}
	if n, e := Write(wfd, []byte("hello")); n != 5 || e != 0 {
		t.Fatalf("Write = %d, %v; want 5, 0", n, e)
	}
	buf := make([]byte, 16)
	if n, e := Read(rfd, buf); n != 5 || e != 0 || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %d (%q), %v; want 5 (hello), 0", n, buf[:n], e)
	}
	if n, e := Read(rfd, buf); n != 0 || e != syscall.EAGAIN {
		t.Fatalf("Read of an empty pipe = %d, %v; want 0, EAGAIN", n, e)
	}
	w.Close()
	if n, e := Read(rfd, buf); n != 0 || e != 0 {
		t.Fatalf("Read at the end = %d, %v; want 0, 0", n, e)
	}
}
