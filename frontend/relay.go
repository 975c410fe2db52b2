package frontend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/aksml/aksml/frontend/internal/wire"
)

// Answers streamed by the engines that serve a caller from a goroutine
// (the http.Handler path and the HTTPS engine), as the event loop streams
// them (package frontend/internal/loop): a replica's answer whose body is
// chunked, or whose Content-Length says more than wire.StreamOver bytes
// are still to come, is not read whole. Its head goes to the caller at once, and its body as each
// piece is read from the replica (bodyRelay.run), so the caller sees the
// first bytes while the replica produces the rest, CPU time is linear in
// the answer's size, and the router holds one piece (relayPiece bytes) of
// it per request whatever its size.
//
// The goroutine writes each piece before it reads the next: a caller that
// reads slowly slows the replica's answer down (TCP's flow control), and
// the replica's slot is held until the caller has taken all but what the
// sockets buffer, as nginx does with proxy_buffering off (the event loop
// instead keeps the lagging part in a file and frees the slot). A caller
// that reads nothing at all is cut off after BodyReadTimeout by the HTTPS
// engine's write deadline, and by the http.Server's WriteTimeout on the
// http.Handler path.
//
// The scoring timeout bounds the wait for the answer's head; after it, a
// replica that sends nothing for BodyReadTimeout is cut off. Once the head
// is out, a failure can no longer become a 502: a replica that breaks off,
// stalls, or sends a malformed chunk ends the caller's answer before its
// end — the HTTPS engine closes the connection, ServeHTTP panics with
// http.ErrAbortHandler, which makes net/http close it — so the caller sees
// a truncated answer, never a complete-looking one. The request counts as a
// 502 in the router's statistics, as on the event loop. A caller that hangs
// up meanwhile (ServeHTTP: its request's context ends; the HTTPS engine
// looks at its socket every callerCheck while the replica sends nothing)
// ends the replica's answer at once, counted as 499.

// relayPiece is the size of the pieces an answer is read in.
const relayPiece = 64 << 10

// errStreamBroken ends an answer whose head is already out.
var errStreamBroken = errors.New("the replica's answer broke off after its head was sent")

// bodyRelay is the body of a replica's answer still on the replica's
// connection, with the exchange it ends.
type bodyRelay struct {
	uc      *upConn // nil: the answer was read whole
	pool    *connPool
	pre     []byte // body bytes read with the head
	chunked bool
	left    int64 // body bytes due, with a Content-Length
	keep    bool  // the connection may serve again after the body
	// unwatch, when set, stops what watches the caller (and would close
	// the connection) before the connection goes back to its pool.
	unwatch func() bool
	// gone, when set, is asked every callerCheck while the replica sends
	// nothing whether the caller hung up (see tlsConn.callerGone).
	gone func() bool
	// x is the exchange, whose slot the answer holds until its end, and
	// code the status code it ends with when the body arrives whole.
	x    exch
	code int
}

// streaming reports whether the answer's body is still to be relayed.
func (b *bodyRelay) streaming() bool { return b != nil && b.uc != nil }

// run relays the body: it passes each piece of its data to out, and calls
// flush after each piece read from the replica (and first of all, so that
// the head goes out at once). At the body's end the connection goes back
// to its pool (or is closed), and run returns when the end was read. An
// error that wraps errStreamBroken is the replica's (it broke off, sent
// nothing for idle, or sent a malformed chunk); others are the caller's:
// out's, flush's, or errCallerLeft. The connection is closed on any error.
func (b *bodyRelay) run(buf []byte, idle time.Duration, out func([]byte) error, flush func() error) (time.Time, error) {
	var dec wire.ChunkDecoder
	pend := b.pre
	b.pre = nil
	uc := b.uc
	b.uc = nil
	moved := time.Now() // when the replica last sent something
	for {
		var (
			n         int
			done      bool
			err, oerr error
		)
		if b.chunked {
			n, done, err = dec.Feed(pend, 1<<62, func(p []byte) error {
				oerr = out(p)
				return oerr
			})
		} else {
			n = int(min(int64(len(pend)), b.left))
			b.left -= int64(n)
			done = b.left == 0
			if n > 0 {
				oerr = out(pend[:n])
			}
		}
		if oerr == nil {
			oerr = flush()
		}
		if oerr != nil || err != nil {
			uc.Close()
			if oerr != nil {
				return time.Time{}, oerr
			}
			return time.Time{}, fmt.Errorf("%w: %v", errStreamBroken, err)
		}
		if done {
			now := time.Now()
			if b.unwatch != nil && !b.unwatch() {
				b.keep = false // the caller left: it is being closed
			}
			if b.keep && n == len(pend) {
				b.pool.put(uc, now)
			} else {
				uc.Close() // it sent more than the answer
			}
			return now, nil
		}
		until := moved.Add(idle)
		if b.gone != nil {
			until = watchUntil(until)
		}
		if err := uc.SetReadDeadline(until); err != nil {
			uc.Close()
			return time.Time{}, fmt.Errorf("%w: %v", errStreamBroken, err)
		}
		k, rerr := uc.Read(buf)
		if k == 0 && b.gone != nil && isTimeout(rerr) && time.Since(moved) < idle {
			if b.gone() {
				uc.Close()
				return time.Time{}, errCallerLeft
			}
			pend = nil
			continue
		}
		moved = time.Now()
		if k == 0 {
			uc.Close()
			if rerr == nil || rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return time.Time{}, fmt.Errorf("%w: %v", errStreamBroken, rerr)
		}
		pend = buf[:k]
	}
}

// readHead reads an answer's head into resp (after any interim answers,
// as fasthttp does), then its body, unless the body is chunked or more
// than wire.StreamOver bytes of it are still due: then it returns true, and b
// holds what br had read of the body, to relay the rest from the
// connection (the caller sets b.uc).
func readHead(resp *fasthttp.Response, br *bufio.Reader, b *bodyRelay) (bool, error) {
	if err := resp.Header.Read(br); err != nil {
		return false, err
	}
	for n := 0; ; n++ {
		code := resp.Header.StatusCode()
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			break
		}
		if n >= 100 {
			return false, errors.New("too many interim answers")
		}
		if err := resp.Header.Read(br); err != nil {
			return false, err
		}
	}
	code := resp.Header.StatusCode()
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return false, nil // no body
	}
	cl := resp.Header.ContentLength()
	if cl == -1 || cl >= 0 && cl-br.Buffered() > wire.StreamOver {
		pre, _ := br.Peek(br.Buffered())
		b.pre = append(b.pre[:0], pre...)
		_, _ = br.Discard(len(pre))
		b.chunked, b.left, b.keep = cl == -1, int64(cl), !resp.ConnectionClose()
		return true, nil
	}
	return false, resp.ReadBody(br, 0)
}

// relayHTTP writes the head of a streamed answer in resp to w, then its
// body as it arrives, and ends the exchange. A failure after the head is
// out aborts the handler (http.ErrAbortHandler), so that net/http closes
// the caller's connection before the answer's end.
func (rt *Router) relayHTTP(ctx context.Context, w http.ResponseWriter, resp *fasthttp.Response, b *bodyRelay) {
	uc := b.uc
	if ctx.Done() != nil {
		// A caller that hangs up ends the replica's answer too.
		b.unwatch = context.AfterFunc(ctx, func() { uc.Close() })
		defer b.unwatch()
	}
	copyHead(w, resp)
	if !b.chunked {
		w.Header().Set("Content-Length", strconv.FormatInt(b.left, 10))
	}
	w.WriteHeader(resp.StatusCode())
	rc := http.NewResponseController(w)
	buf := make([]byte, relayPiece)
	done, err := b.run(buf, rt.bodyTimeout, func(p []byte) error {
		_, err := w.Write(p)
		return err
	}, rc.Flush)
	if err != nil {
		b.x.end(cutCode(err, ctx), time.Time{})
		rt.log.Debug("frontend: streamed answer cut off", "err", err)
		panic(http.ErrAbortHandler)
	}
	b.x.end(b.code, done)
}

// cutCode is the status code counted for an answer cut off after its head
// went out with err: 502 when the replica failed, 499 when the caller hung
// up or could not be written to (as on the event loop).
func cutCode(err error, ctx context.Context) int {
	if errors.Is(err, errStreamBroken) && (ctx == nil || ctx.Err() == nil) {
		return http.StatusBadGateway
	}
	return 499
}
