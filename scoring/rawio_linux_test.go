package scoring

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aksml/aksml/internal/rawsys"
)

// rawPair returns a raw connection accepted by wrapListener and the plain
// client connection at its other end.
func rawPair(t *testing.T) (raw net.Conn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err = wrapListener(ln).Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.(*rawsys.Conn); !ok {
		t.Fatalf("Accept returned %T, want *rawsys.Conn", raw)
	}
	t.Cleanup(func() { raw.Close(); peer.Close() })
	return raw, peer
}

func TestRawTCPConnReadWrite(t *testing.T) {
	raw, peer := rawPair(t)
	// More than the socket buffers hold: Write waits for room.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	if n, err := raw.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the peer read %d bytes, not the %d written", len(b), len(big))
	}
	if _, err := peer.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := raw.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read = %q, %v; want ping", buf[:n], err)
	}
	if n, err := raw.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
	peer.Close()
	if n, err := raw.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
}

func TestRawTCPConnDeadlineAndClose(t *testing.T) {
	raw, _ := rawPair(t)
	buf := make([]byte, 16)
	if err := raw.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := raw.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v (%T), want a timeout", err, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read past the deadline: %#v, want a *net.OpError of op read", err)
	}
	// A Read blocked in the poller ends when the connection closes.
	if err := raw.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := raw.Read(buf)
		errc <- err
	}()
	time.AfterFunc(10*time.Millisecond, func() { raw.Close() })
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := raw.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed connection: %v, want net.ErrClosed", err)
	}
}

func TestFileIO(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pr, pw := newFileIO(r), newFileIO(w)
	if pr.rc == nil || pw.rc == nil {
		t.Fatal("a pipe has no RawConn")
	}
	// More than a pipe holds (64 KiB): the write waits for the reader.
	big := bytes.Repeat([]byte("x"), 1<<20)
	errc := make(chan error, 1)
	go func() {
		_, err := pw.Write(big)
		w.Close()
		errc <- err
	}()
	b, err := io.ReadAll(pr)
	if err != nil || len(b) != len(big) {
		t.Fatalf("ReadAll = %d bytes, %v; want %d, nil", len(b), err, len(big))
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write on a closed pipe: %v, want os.ErrClosed", err)
	}
	// The reader's end gone: EPIPE (SIGPIPE on a pipe other than stdout
	// and stderr is ignored by the runtime).
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	r2.Close()
	if _, err := newFileIO(w2).Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write with no reader: %v, want EPIPE", err)
	}
}
