package scoring

import (
	"encoding/binary"
	"sync"
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
// path.
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
	// wake holds a token when records arrived in an empty log, or the log
	// closed, since the writer last looked.
	wake chan struct{}
}

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
	return q.n+k <= q.limit && len(q.buf)+size <= q.maxBytes, false
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
	if q.n == k {
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

// wait waits until records are waiting; false once the log is closed and
// empty.
func (q *captureLog) wait() bool {
	for {
		q.mu.Lock()
		n, closed := q.n, q.closed
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
// and the number of records they hold.
func (q *captureLog) take() (entries []byte, records int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	entries, records = q.buf, q.n
	q.buf, q.spare, q.n = q.spare[:0], nil, 0
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
