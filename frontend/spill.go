package frontend

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/aksml/aksml/frontend/internal/wire"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
)

// Large request bodies on the event loop.
//
// A request whose body is larger than spillOver by its Content-Length, or
// a chunked one of which accumulateOver bytes are buffered and not all of
// it, is not held in memory:
// its head is kept, and its body is written to an unlinked temporary file
// as it arrives, each byte as it is read from the socket (a chunked body
// decoded on the way, its size checked against the limit at every chunk
// header, so an oversized body gets 413 as soon as the chunk that takes it
// past the limit is announced). Once the body is all there the request is
// routed like any other and its body is sent to the replica from the file
// in feedPiece pieces as the replica's connection drains, with a
// Content-Length. When no file can be created in Options.BodySpillDir, the
// body is held in memory instead (and a warning logged once). A connection
// thus holds at most about spillOver bytes of
// a request plus what gnet buffers for a read and feedPiece for a write,
// whatever the body's size; CPU time is linear in it. nginx buffers large bodies the same
// way (client_body_buffer_size, then a temporary file).

const (
	// spillOver is the body size past which a request's body goes to a
	// file.
	spillOver = 1 << 20
)

// spillFile is a request body being written to, or read from, an unlinked
// temporary file, with the request's head as the caller sent it.
type spillFile struct {
	rt   *Router // whose spill allowance the file's bytes count against
	f    *os.File
	head []byte
	want int64 // the Content-Length, or -1 for a chunked body
	size int64 // bytes of body in the file
	dec  wire.ChunkDecoder
	done bool
	err  error // a failed write: the request is refused
}

// newSpillFile creates an unlinked temporary file in dir (os.TempDir when
// empty) for the body of the request with the given head.
func newSpillFile(rt *Router, head []byte, want int64) (*spillFile, error) {
	if want > 0 && rt.spillUsed.Load()+want > rt.spillCap {
		return nil, errSpillFull // refused before a file is made
	}
	f, err := os.CreateTemp(rt.spillDir, "aksml-body-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return &spillFile{rt: rt, f: f, head: append([]byte(nil), head...), want: want}, nil
}

// close closes the file and gives its bytes back to the allowance.
func (s *spillFile) close() {
	if s != nil && s.f != nil {
		s.f.Close()
		s.f = nil
		s.rt.spillUsed.Add(-s.size)
	}
}

// take writes the body bytes at the start of p to the file and returns how
// many bytes of p belong to the body (all of p unless the body ends in it),
// whether the body is complete, and fasthttp.ErrBodyTooLarge, wire.ErrBadChunk or
// a write error.
func (s *spillFile) take(p []byte, max int64) (int, bool, error) {
	if s.want >= 0 {
		n := int(min(int64(len(p)), s.want-s.size))
		if err := s.write(p[:n]); err != nil {
			return n, false, err
		}
		s.done = s.size == s.want
		return n, s.done, nil
	}
	n, done, err := s.dec.Feed(p, max, s.write)
	s.done = done
	return n, done, err
}

// write appends p to the file, counting it against the router's spill
// allowance first: errSpillFull when the allowance has no room for it.
func (s *spillFile) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if s.rt.spillUsed.Add(int64(len(p))) > s.rt.spillCap {
		s.rt.spillUsed.Add(-int64(len(p)))
		return errSpillFull
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	s.rt.spillUsed.Add(int64(n - len(p)))
	if err != nil {
		return &spillError{err}
	}
	return nil
}

// errSpillFull refuses a body the router's spill allowance
// (Options.MaxSpillBytes) has no room for: 503, as the allowance frees up
// when other bodies have been sent.
var errSpillFull = errors.New("the router's allowance for buffering request bodies on disk is used up")

// reader reads the whole body from the start, as a fasthttp body stream
// for the slow path (forward makes a fresh one for each attempt).
func (s *spillFile) reader() *spillReader {
	return &spillReader{SectionReader: io.NewSectionReader(s.f, 0, s.size), s: s}
}

// spillReader is a spilled body as a request's body stream. It is not an
// io.Closer: the file belongs to the connection.
type spillReader struct {
	*io.SectionReader
	s *spillFile
}

// spillError is a failure to write a body to its file.
type spillError struct{ err error }

func (e *spillError) Error() string { return "buffering the request body: " + e.err.Error() }
func (e *spillError) Unwrap() error { return e.err }

// startSpill begins writing to a file the body of the request at the start
// of the caller's input, whose head is headLen bytes; want is its
// Content-Length, or -1 for a chunked body. What arrived of the body so
// far is written at once.
func (l *loop) startSpill(cc *clientConn, buf []byte, headLen int, want int64) gnet.Action {
	sp, err := newSpillFile(l.eng.rt, buf[:headLen], want)
	if err == errSpillFull {
		return l.refuse(cc, err)
	}
	if err != nil {
		// No file (a read-only or missing directory): hold this body in
		// memory, as smaller ones are.
		if l.eng.rt.spillWarned.CompareAndSwap(false, true) {
			l.eng.rt.log.Warn("frontend: large request bodies are held in memory: no file for them", "err", err)
		}
		cc.noSpill = true
		return l.serveClient(cc)
	}
	l.consume(cc, headLen)
	cc.sp = sp
	return l.serveClient(cc)
}

// spillIn writes the caller's input to cc.sp: it returns whether the body
// is complete, or an error that refuses the request.
func (l *loop) spillIn(cc *clientConn) (bool, error) {
	sp := cc.sp
	for !sp.done {
		buf := l.input(cc)
		if len(buf) == 0 {
			l.setPhase(cc, phaseBody, time.Now())
			return false, nil
		}
		n, _, err := sp.take(buf, l.eng.rt.maxBody)
		l.consume(cc, n)
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// spilled reads the head of cc's spilled request into cc.req, with its body
// to come from the file.
func (l *loop) spilled(cc *clientConn) error {
	sp := cc.sp
	if _, err := l.parseRequest(cc, &cc.req, sp.head); err != nil && err != errNeedMore {
		return err
	}
	if sp.size > l.eng.rt.maxBody {
		return fasthttp.ErrBodyTooLarge
	}
	cc.req.SetBodyStream(sp.reader(), int(sp.size))
	return nil
}

// bodyLen is the size of the body sent after cc.upReq from cc.upBody or
// cc.upFile.
func (cc *clientConn) bodyLen() int {
	if cc.upFile != nil {
		return int(cc.upFile.size)
	}
	return len(cc.upBody)
}

// bodyPiece returns up to n bytes of cc's body from off: a slice of
// cc.upBody, or read from cc.upFile into the loop's piece buffer (valid
// until the next call).
func (l *loop) bodyPiece(cc *clientConn, off, n int) ([]byte, error) {
	n = min(n, cc.bodyLen()-off)
	if cc.upFile == nil {
		return cc.upBody[off : off+n], nil
	}
	if cap(l.piece) < n {
		l.piece = make([]byte, feedPiece)
	}
	b := l.piece[:n]
	if _, err := cc.upFile.f.ReadAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("reading the buffered request body: %w", err)
	}
	return b, nil
}

// withLength makes a request head written by fasthttp for a request whose
// body was left out (its Content-Length set to 0) announce a body of n
// bytes.
func withLength(head []byte, n int) []byte {
	const cl = "\r\nContent-Length: 0\r\n"
	i := bytes.Index(head, []byte(cl))
	if i < 0 {
		// Not written: add it before the blank line.
		i = len(head) - 4
		head = append(head[:i:i], "\r\nContent-Length: 0\r\n\r\n"...)
	}
	out := make([]byte, 0, len(head)+16)
	out = append(out, head[:i]...)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, "\r\n"...)
	return append(out, head[i+len(cl):]...)
}
