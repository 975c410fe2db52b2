package spill

import (
	"errors"
	"io"
	"os"
	"sync/atomic"

	"github.com/aksml/aksml/frontend/internal/wire"
)

// Allowance bounds the bytes in spill files at once (Options.MaxSpillBytes),
// over all connections, in Dir (os.TempDir when empty).
type Allowance struct {
	Dir    string
	Cap    int64
	used   atomic.Int64 // bytes in spill files now
	warned atomic.Bool
}

// Used is the bytes in spill files now.
func (a *Allowance) Used() int64 { return a.used.Load() }

// FirstWarning reports whether this is the first call: a warning that no
// file could be made is logged once.
func (a *Allowance) FirstWarning() bool { return a.warned.CompareAndSwap(false, true) }

// File is a request body being written to, or read from, an unlinked
// temporary file, with the request's head as the caller sent it.
type File struct {
	a    *Allowance // the file's bytes count against it
	F    *os.File
	Head []byte
	Want int64 // the Content-Length, or -1 for a chunked body
	Size int64 // bytes of body in the file
	dec  wire.ChunkDecoder
	Done bool
	Err  error // a failed write: the request is refused
}

// Create creates an unlinked temporary file in a.Dir (os.TempDir when
// empty) for the body of the request with the given head.
func Create(a *Allowance, head []byte, want int64) (*File, error) {
	if want > 0 && a.used.Load()+want > a.Cap {
		return nil, ErrFull // refused before a file is made
	}
	f, err := os.CreateTemp(a.Dir, "aksml-body-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return &File{a: a, F: f, Head: append([]byte(nil), head...), Want: want}, nil
}

// close closes the file and gives its bytes back to the allowance.
func (s *File) Close() {
	if s != nil && s.F != nil {
		s.F.Close()
		s.F = nil
		s.a.used.Add(-s.Size)
	}
}

// take writes the body bytes at the start of p to the file and returns how
// many bytes of p belong to the body (all of p unless the body ends in it),
// whether the body is complete, and fasthttp.ErrBodyTooLarge, wire.ErrBadChunk or
// a write error.
func (s *File) Take(p []byte, max int64) (int, bool, error) {
	if s.Want >= 0 {
		n := int(min(int64(len(p)), s.Want-s.Size))
		if err := s.Write(p[:n]); err != nil {
			return n, false, err
		}
		s.Done = s.Size == s.Want
		return n, s.Done, nil
	}
	n, done, err := s.dec.Feed(p, max, s.Write)
	s.Done = done
	return n, done, err
}

// write appends p to the file, counting it against the router's spill
// allowance first: ErrFull when the allowance has no room for it.
func (s *File) Write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if s.a.used.Add(int64(len(p))) > s.a.Cap {
		s.a.used.Add(-int64(len(p)))
		return ErrFull
	}
	n, err := s.F.Write(p)
	s.Size += int64(n)
	s.a.used.Add(int64(n - len(p)))
	if err != nil {
		return &Error{err}
	}
	return nil
}

// ErrFull refuses a body the router's spill allowance
// (Options.MaxSpillBytes) has no room for: 503, as the allowance frees up
// when other bodies have been sent.
var ErrFull = errors.New("the router's allowance for buffering request bodies on disk is used up")

// reader reads the whole body from the start, as a fasthttp body stream
// for the slow path (forward makes a fresh one for each attempt).
func (s *File) Reader() *Reader {
	return &Reader{SectionReader: io.NewSectionReader(s.F, 0, s.Size), S: s}
}

// Reader is a spilled body as a request's body stream. It is not an
// io.Closer: the file belongs to the connection.
type Reader struct {
	*io.SectionReader
	S *File
}

// Error is a failure to write a body to its file.
type Error struct{ err error }

func (e *Error) Error() string { return "buffering the request body: " + e.err.Error() }
func (e *Error) Unwrap() error { return e.err }
