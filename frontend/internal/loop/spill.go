//go:build linux

package loop

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/spill"
)

// Large request bodies on the event loop.
//
// A request whose body is larger than wire.SpillOver by its Content-Length, or
// a chunked one of which wire.AccumulateOver bytes are buffered and not all of
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
// thus holds at most about wire.SpillOver bytes of
// a request plus what a loop reads at once and feedPiece for a write,
// whatever the body's size; CPU time is linear in it. nginx buffers large bodies the same
// way (client_body_buffer_size, then a temporary file).

// startSpill begins writing to a file the body of the request at the start
// of the caller's input, whose head is headLen bytes; want is its
// Content-Length, or -1 for a chunked body. What arrived of the body so
// far is written at once.
func (l *loop) startSpill(cc *clientConn, buf []byte, headLen int, want int64) action {
	sp, err := spill.Create(l.eng.cfg.Spill, buf[:headLen], want)
	if err == spill.ErrFull {
		return l.refuse(cc, err)
	}
	if err != nil {
		// No file (a read-only or missing directory): hold this body in
		// memory, as smaller ones are.
		if l.eng.cfg.Spill.FirstWarning() {
			l.eng.cfg.Log.Warn("frontend: large request bodies are held in memory: no file for them", "err", err)
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
	for !sp.Done {
		buf := l.input(cc)
		if len(buf) == 0 {
			l.setPhase(cc, phaseBody, time.Now())
			return false, nil
		}
		n, _, err := sp.Take(buf, l.eng.cfg.MaxBody)
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
	if _, err := l.parseRequest(cc, &cc.req, sp.Head); err != nil && err != errNeedMore {
		return err
	}
	if sp.Size > l.eng.cfg.MaxBody {
		return fasthttp.ErrBodyTooLarge
	}
	cc.req.SetBodyStream(sp.Reader(), int(sp.Size))
	return nil
}

// bodyLen is the size of the body sent after cc.upReq from cc.upBody or
// cc.upFile.
func (cc *clientConn) bodyLen() int {
	if cc.upFile != nil {
		return int(cc.upFile.Size)
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
	if _, err := cc.upFile.F.ReadAt(b, int64(off)); err != nil {
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
