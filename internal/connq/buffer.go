package connq

import "io"

// Buffer is a connection's read buffer for an engine that reads requests
// itself: Bytes are read and not yet consumed. Its zero value is empty;
// Reset gives it its first size.
type Buffer struct {
	buf      []byte
	off, end int
	skipCRLF int // CR or LF bytes still to skip before the next request
}

// Reset empties b and gives it size bytes of room.
func (b *Buffer) Reset(size int) { *b = Buffer{buf: make([]byte, size)} }

// Bytes are the bytes read and not consumed.
func (b *Buffer) Bytes() []byte { return b.buf[b.off:b.end] }

// Size is the buffer's length.
func (b *Buffer) Size() int { return len(b.buf) }

// Consume drops the first n bytes of Bytes.
func (b *Buffer) Consume(n int) { b.off += n }

// SkipCRLF makes Next skip up to n CR or LF bytes before the next request,
// as net/http does after a POST (RFC 9112, section 2.2).
func (b *Buffer) SkipCRLF(n int) { b.skipCRLF = n }

// Next returns Bytes after skipping the CR and LF bytes SkipCRLF asked
// for, and rewinds an empty buffer to its start.
func (b *Buffer) Next() []byte {
	if b.skipCRLF > 0 {
		for b.skipCRLF > 0 && b.off < b.end && (b.buf[b.off] == '\r' || b.buf[b.off] == '\n') {
			b.off++
			b.skipCRLF--
		}
		if b.off < b.end {
			b.skipCRLF = 0
		}
	}
	if b.off == b.end {
		b.off, b.end = 0, 0
	}
	return b.buf[b.off:b.end]
}

// Ensure makes room for a request of n bytes, and for at least one more
// byte than Bytes holds, moving Bytes to the start or to a larger buffer.
func (b *Buffer) Ensure(n int) {
	if b.off > 0 && (b.end == len(b.buf) || b.off+n > len(b.buf)) {
		b.end = copy(b.buf, b.buf[b.off:b.end])
		b.off = 0
	}
	if need := max(n, b.end+1); need > len(b.buf) {
		nb := make([]byte, max(need, 2*len(b.buf)))
		b.end = copy(nb, b.buf[b.off:b.end])
		b.off = 0
		b.buf = nb
	}
}

// ReadOnce reads once from r into the room after Bytes.
func (b *Buffer) ReadOnce(r io.Reader) (int, error) {
	n, err := r.Read(b.buf[b.end:])
	b.end += n
	return n, err
}

// Shrink lets go of a buffer grown past limit bytes, for one of size bytes,
// when what it holds fits.
func (b *Buffer) Shrink(limit, size int) {
	if len(b.buf) > limit && b.end-b.off < size {
		nb := make([]byte, size)
		b.end = copy(nb, b.buf[b.off:b.end])
		b.off = 0
		b.buf = nb
	}
}
