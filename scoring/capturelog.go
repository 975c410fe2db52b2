package scoring

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// captureLog is the bounded buffer between the request path and a
// background writer (telemetry's exporter, data collection's writer): the
// entries waiting, appended to one byte buffer under one mutex, and how
// many records they hold (at most limit).
//
// The request path copies what it hands over (a worker's D or L frame as
// it came, a request's fields) into the buffer and returns: no parsing, no
// allocation, one lock per hand-over, and the bytes of a busy replica's
// records side by side in memory. The writer takes every entry waiting at
// once by swapping buffers, and parses and encodes them off the request
// path. A helper (a connection that has just sent its answer, see
// Server.helpCapture) may take them too and parse and encode them ahead of
// the writer: they are then held (counted against the limits until the
// writer next takes) and the writer is woken to write them.
//
// An entry is its length (4 bytes, big-endian), then its bytes.
type captureLog struct {
	mu    sync.Mutex
	buf   []byte // the entries waiting
	spare []byte // the buffer the writer gave back, for the next swap
	n     int    // the records in buf
	limit int
	// maxBytes bounds len(buf) (MaxCaptureBuffer).
	maxBytes int
	closed   bool
	// held and heldBytes are the records (and their bytes) helpers took
	// since the writer last took: still in the replica, formatted and
	// waiting for the writer, so counted against limit and maxBytes.
	held, heldBytes int
	// waiting is n, for helpers to look at without the lock.
	waiting atomic.Int64
	// wake holds a token when records arrived in an empty log, or the log
	// closed, since the writer last looked.
	wake chan struct{}
}

// helpCapture is called by a connection of the lean engine once it has
// sent an answer, before it reads its next request: the replica's data
// collection and telemetry format the records waiting (when at least
// captureHelp wait and no one else is formatting). The work is the
// writers' and costs as much, but spread over the answers as they go,
// while the records are fresh in the caches, rather than in one burst of
// tens of milliseconds' records when a writer wakes, which holds a core
// while requests queue behind it. The writers still do what no helper
// did, and all the writing: a helper never calls a store or a sink, so a
// slow one never slows a connection.
func (s *Server) helpCapture() {
	if s.child.keepsUp() {
		// The capture writer process formats.
		return
	}
	if s.dc != nil {
		s.dc.help()
	}
	if s.tel != nil {
		s.tel.help()
	}
}

// captureHelp is how many records waiting make a helper (see
// Server.helpCapture) take them: some tens of microseconds of formatting,
// enough to keep the formatting code warm (with 32, the same work cost
// more CPU), little enough not to hold a core long.
const captureHelp = 256

// captureWriteAt is how many bytes of rows (of one file) or of encoded
// telemetry, formatted by helpers, make them wake the writer to write them
// rather than wait for the end of its linger: writes of about this size.
const captureWriteAt = 64 << 10

// captureLogKeep bounds the buffer a writer gives back for reuse: a burst
// that grew it past this does not keep the memory.
const captureLogKeep = 4 << 20

func newCaptureLog(limit int) *captureLog {
	return &captureLog{limit: limit, maxBytes: MaxCaptureBuffer, wake: make(chan struct{}, 1)}
}

// MaxCaptureBuffer bounds the bytes a replica's data collection buffer,
// and its telemetry buffer, hold (besides their limits in records): records
// that would take a buffer past it are dropped and counted, as when the
// buffer is full.
const MaxCaptureBuffer = 256 << 20

// roomLocked tells whether k more records of about size bytes would be
// taken, and if not whether because the log is closed. The caller holds
// q.mu.
func (q *captureLog) roomLocked(k, size int) (ok, closed bool) {
	if q.closed {
		return false, true
	}
	return q.n+q.held+k <= q.limit && len(q.buf)+q.heldBytes+size <= q.maxBytes, false
}

// beginLocked starts an entry and returns where it starts, for endLocked.
// The caller holds q.mu and appends the entry's bytes to q.buf.
func (q *captureLog) beginLocked() int {
	at := len(q.buf)
	q.buf = append(q.buf, 0, 0, 0, 0)
	return at
}

// endLocked ends the entry begun at at, holding k records, and wakes the
// writer if the log was empty. The caller holds q.mu.
func (q *captureLog) endLocked(at, k int) {
	binary.BigEndian.PutUint32(q.buf[at:], uint32(len(q.buf)-at-4))
	q.n += k
	q.waiting.Store(int64(q.n))
	if q.n == k && q.held == 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// len is the number of records waiting.
func (q *captureLog) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// wait waits until records are waiting, or held by helpers; false once
// the log is closed and empty.
func (q *captureLog) wait() bool {
	for {
		q.mu.Lock()
		n, closed := q.n+q.held, q.closed
		q.mu.Unlock()
		switch {
		case n > 0:
			return true
		case closed:
			return false
		}
		<-q.wake
	}
}

// take takes every entry waiting: their bytes (valid until the next take)
// and the number of records they hold. The writer takes, and with that
// the records helpers held are its own.
func (q *captureLog) take() (entries []byte, records int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	entries, records = q.swapLocked()
	q.held, q.heldBytes = 0, 0
	return entries, records
}

// takeHelped is take for a helper: the records stay counted, as held,
// until the writer next takes (its wait returns for them; it was woken
// when the first of them arrived in the empty log). A helper takes only
// when at least min records wait; nil when fewer do.
func (q *captureLog) takeHelped(min int) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n < min || q.closed {
		return nil
	}
	q.heldBytes += len(q.buf)
	entries, records := q.swapLocked()
	q.held += records
	return entries
}

// help is a helper's turn at the log (see Server.helpCapture): when at
// least captureHelp records wait and no one holds fmu (the writer, another
// helper), it takes them (see takeHelped) and formats them with format,
// which tells whether enough is formatted for the writer to write now;
// ready then wakes the writer.
func (q *captureLog) help(fmu *sync.Mutex, ready chan<- struct{}, format func(entries []byte) (full bool)) {
	if q.waiting.Load() < captureHelp || !fmu.TryLock() {
		return
	}
	full := format(q.takeHelped(captureHelp))
	fmu.Unlock()
	if full {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
}

// swapLocked takes the entries waiting, giving the buffer the spare one.
// The caller holds q.mu.
func (q *captureLog) swapLocked() (entries []byte, records int) {
	entries, records = q.buf, q.n
	q.buf, q.spare, q.n = q.spare[:0], nil, 0
	q.waiting.Store(0)
	if cap(entries) <= captureLogKeep {
		q.spare = entries
	}
	return entries, records
}

// close refuses records from now on and wakes the writer; false if the
// log was closed already.
func (q *captureLog) close() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.closed = true
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// nextEntry cuts the first entry off entries (as take returns them).
func nextEntry(entries []byte) (entry, rest []byte) {
	n := binary.BigEndian.Uint32(entries)
	return entries[4 : 4+n], entries[4+n:]
}
