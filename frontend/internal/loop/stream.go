//go:build linux

package loop

import (
	"errors"
	"net/http"
	"time"

	"github.com/aksml/aksml/frontend/internal/spill"
	"github.com/aksml/aksml/frontend/internal/wire"
)

// Answers forwarded as they arrive, on the event loop.
//
// A replica's answer whose body is chunked (a score.py that streams with
// AMLResponse, a Go handler that flushes), or whose Content-Length says
// more than wire.StreamOver bytes are still to come, is not held until it is
// complete: its head goes to the caller at once, and its body as each
// piece is read from the replica (a chunked one is checked chunk by chunk
// and sent on chunked, a piece per read). CPU time is linear in the
// answer's size, and the router holds at most about answerBacklog bytes
// of it in memory per connection: while the caller has that much unread,
// what follows goes to an unlinked file (Options.BodySpillDir, under the
// same MaxSpillBytes allowance as request bodies) and is sent from there
// as the caller reads, as nginx buffers answers for slow clients. The
// replica's slot and connection are free as soon as the replica has sent
// everything.
//
// The scoring timeout bounds the wait for the answer's head; after it, a
// replica that sends nothing for BodyReadTimeout, or a caller that reads
// nothing for as long, is cut off. Once the head is out, a failure can no
// longer become a 502: a replica that breaks off, or sends a malformed
// chunk, closes the caller's connection before the answer's end, so the
// caller sees a truncated answer, never a complete-looking one (nginx does
// the same). The request counts as a 502 in the router's statistics.
//
// A chunked answer to an HTTP/1.0 caller, answers without length that run
// until the replica closes, and answers on the slow path (a request that
// waited for a slot, a retry) are read whole and sent with a
// Content-Length, as before. The engines that serve a caller from a
// goroutine stream answers their own way (relay.go).

const (
	// answerBacklog is how much of an answer may wait in memory for a
	// caller that does not read; past it, the answer goes to a file.
	answerBacklog = 1 << 20
)

// errStreamBroken ends an answer whose head is already out.
var errStreamBroken = errors.New("the replica's answer broke off after its head was sent")

// answerStream is an answer being forwarded as it arrives.
type answerStream struct {
	chunked bool
	left    int64             // body bytes due, with a Content-Length
	dec     wire.ChunkDecoder // the replica's chunks
	code    int               // for the statistics
	keep    bool              // the replica's connection may serve again
	// file holds what the caller has not taken yet while it lags; off is
	// how much of it went out.
	file *spill.File
	off  int64
	// upDone: the replica sent everything (only the file is left).
	upDone bool
	// moved is when bytes last went to the caller.
	moved time.Time
}

// startStream begins forwarding cc's answer, whose head lr was scanned at
// the start of buf, as it arrives.
func (l *loop) startStream(up *upstream, cc *clientConn, buf []byte, lr *wire.Response) action {
	ex := &cc.ex
	now := time.Now()
	code := lr.Code
	if code == http.StatusInternalServerError {
		code = http.StatusBadGateway
	}
	s := &answerStream{chunked: lr.Chunked, code: code, keep: !lr.CloseConn, moved: now}
	if !s.chunked {
		s.left = int64(lr.Length)
	}
	cc.stream = s
	// From here the replica's progress is what is timed (see sweep).
	ex.deadline = now.Add(l.eng.cfg.BodyTimeout)
	l.schedule(ex.deadline, now)
	w := &l.out
	w.B = wire.AppendStreamHead(w.B[:0], buf, lr, ex.id, ex.x.Version(), cc.closeAfter)
	_, _ = up.c.Discard(lr.Start)
	if err := l.toCaller(cc, w.B); err != nil {
		l.breakStream(cc, false, err)
		return actClose
	}
	return l.streamIn(up, cc, buf[lr.Start:])
}

// streamIn forwards the part of cc's answer in buf (what the replica's
// connection holds, already discarded up to buf's start).
func (l *loop) streamIn(up *upstream, cc *clientConn, buf []byte) action {
	s := cc.stream
	var n int
	var done bool
	var err error
	if s.chunked {
		n, done, err = s.dec.Feed(buf, 1<<62, func(p []byte) error { return l.chunkToCaller(cc, p) })
		if done && err == nil {
			err = l.toCaller(cc, []byte("0\r\n\r\n"))
		}
	} else {
		n = int(min(int64(len(buf)), s.left))
		s.left -= int64(n)
		done = s.left == 0
		err = l.toCaller(cc, buf[:n])
	}
	_, _ = up.c.Discard(n)
	if err != nil {
		l.breakStream(cc, false, err)
		return actClose
	}
	now := time.Now()
	cc.ex.deadline = now.Add(l.eng.cfg.BodyTimeout)
	l.schedule(cc.ex.deadline, now)
	if !done {
		return actNone
	}
	// The replica sent everything: its slot and connection are free now,
	// whether or not the caller has read it all.
	keep := s.keep && n == len(buf) && cc.upOff >= cc.bodyLen()
	l.endExchange(cc, false)
	if keep {
		l.putIdle(up, now)
	}
	l.settle(cc, s.code, now)
	s.upDone = true
	if s.file == nil {
		cc.stream = nil
		l.next(cc)
	} else {
		l.eng.begin() // the answer is not all out yet (see drainStreams)
	}
	if !keep {
		return actClose
	}
	return actNone
}

// chunkToCaller sends p to the caller as one chunk.
func (l *loop) chunkToCaller(cc *clientConn, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	b := wire.AppendChunk(l.chunkBuf[:0], p)
	l.chunkBuf = b[:0]
	if cap(b) > 4*feedPiece {
		l.chunkBuf = nil // not kept after an unusually large read
	}
	return l.toCaller(cc, b)
}

// toCaller sends p on: to the caller's connection while the caller keeps
// up, else to the answer's file.
func (l *loop) toCaller(cc *clientConn, p []byte) error {
	s := cc.stream
	if len(p) == 0 || cc.closed {
		return nil
	}
	if s.file == nil && cc.c.OutboundBuffered() < answerBacklog {
		_, _ = cc.c.Write(p)
		return nil
	}
	if s.file == nil {
		f, err := spill.Create(l.eng.cfg.Spill, nil, -1)
		if err != nil {
			if errors.Is(err, spill.ErrFull) {
				return err
			}
			// No file can be made: hold the answer in memory instead.
			if l.eng.cfg.Spill.FirstWarning() {
				l.eng.cfg.Log.Warn("frontend: answers for slow callers are held in memory: no file for them", "err", err)
			}
			_, _ = cc.c.Write(p)
			return nil
		}
		s.file, s.off = f, 0
		l.draining = append(l.draining, cc)
		l.armPauseCheck()
	}
	return s.file.Write(p)
}

// drainStreams sends the files of answers whose callers lagged as the
// callers read, and cuts off callers that read nothing for BodyReadTimeout.
func (l *loop) drainStreams() {
	keep := l.draining[:0]
	now := time.Now()
	for _, cc := range l.draining {
		s := cc.stream
		if s == nil || s.file == nil || cc.closed {
			continue
		}
		for s.off < s.file.Size && cc.c.OutboundBuffered() < answerBacklog/4 {
			if len(l.piece) < feedPiece {
				l.piece = make([]byte, feedPiece)
			}
			n, err := s.file.F.ReadAt(l.piece[:min(int64(feedPiece), s.file.Size-s.off)], s.off)
			if n == 0 {
				l.eng.cfg.Log.Error("frontend: answer not sent", "err", err)
				l.cutCaller(cc)
				break
			}
			s.off += int64(n)
			s.moved = now
			if s.off == s.file.Size {
				// The caller has caught up: the file's share of the
				// spill allowance comes back before the last piece goes
				// out, and what follows goes to the caller directly.
				s.file.Close()
				s.file = nil
			}
			_, _ = cc.c.Write(l.piece[:n])
			if s.file == nil {
				break
			}
		}
		if cc.closed {
			continue
		}
		if s.file == nil {
			if s.upDone {
				cc.stream = nil
				l.eng.end()
				l.next(cc)
			}
			continue
		}
		if now.Sub(s.moved) >= l.eng.cfg.BodyTimeout {
			l.cutCaller(cc) // reads nothing (OnClose ends the rest)
			continue
		}
		keep = append(keep, cc)
	}
	clear(l.draining[len(keep):])
	l.draining = keep
}

// cutCaller closes a caller's connection in the middle of its answer.
func (l *loop) cutCaller(cc *clientConn) {
	if !cc.closed {
		cc.closed = true
		_ = cc.c.Close()
	}
}

// breakStream ends an answer whose head is out, because its replica
// failed or its caller cannot be written to: the caller's connection
// closes before the answer's end, and the replica's is dropped (closed
// here when closeUp is set; the caller of breakStream closes it
// otherwise).
func (l *loop) breakStream(cc *clientConn, closeUp bool, err error) {
	l.eng.cfg.Log.Debug("frontend: streamed answer cut off", "err", err)
	if !cc.stream.upDone {
		l.endExchange(cc, closeUp)
		l.settle(cc, http.StatusBadGateway, time.Time{})
	}
	l.endStream(cc)
	l.cutCaller(cc)
}

// endStream drops cc's streamed answer and its file.
func (l *loop) endStream(cc *clientConn) {
	s := cc.stream
	if s == nil {
		return
	}
	cc.stream = nil
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	if s.upDone {
		l.eng.end()
	}
}
