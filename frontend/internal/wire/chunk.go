package wire

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"
)

// Chunked bodies: a decoder for a body handed over in pieces (a spilled
// request body, a streamed answer), a scanner for a body buffered whole,
// and the writer of a chunk.

// maxChunkLine bounds a chunk-size line (with its extensions).
const maxChunkLine = 4096

// ChunkDecoder decodes a chunked body handed to it in pieces of any size,
// with the rules of ScanChunks: CRLF line ends, a hexadecimal size of at
// most 15 digits before any extension, trailer lines up to MaxHeaderBytes.
type ChunkDecoder struct {
	state chunkState
	line  []byte // the size or trailer line arriving, or the CRLF after data
	left  int64  // data bytes left in the chunk
	sum   int64  // data bytes so far
	trail int    // trailer bytes so far
}

type chunkState uint8

// chunkSizeOf reads a chunk-size line (without its CRLF).
func chunkSizeOf(line []byte) (int64, bool) {
	for k, c := range line {
		if c == ';' {
			line = line[:k]
			break
		}
	}
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	size, err := strconv.ParseInt(string(line), 16, 64)
	return size, err == nil && size >= 0 && line[0] != '+' && line[0] != '-'
}

const (
	chunkSize    chunkState = iota // a chunk-size line
	chunkData                      // chunk data
	chunkDataEnd                   // the CRLF after chunk data
	chunkTrailer                   // trailer lines, up to a blank one
)

var ErrBadChunk = errors.New("malformed chunked body")

// ScanChunks walks the chunks of a chunked body in buf from pos, where a
// chunk-size line starts, adding their sizes to sum. It returns where it
// stopped (the start of a chunk not all there yet), the new sum, whether
// the body is complete, and fasthttp.ErrBodyTooLarge as soon as a chunk
// size takes the body past max, or ErrBadChunk.
func ScanChunks(buf []byte, pos int, sum, max int64) (int, int64, bool, error) {
	for {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			if len(buf)-pos > 4096 {
				return pos, sum, false, ErrBadChunk
			}
			return pos, sum, false, nil
		}
		if i == 0 || buf[pos+i-1] != '\r' {
			return pos, sum, false, ErrBadChunk
		}
		line := buf[pos : pos+i-1]
		if j := bytes.IndexByte(line, ';'); j >= 0 {
			line = line[:j]
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) == 0 || len(line) > 15 {
			return pos, sum, false, ErrBadChunk
		}
		var size int64
		for _, c := range line {
			switch {
			case c >= '0' && c <= '9':
				size = size<<4 | int64(c-'0')
			case c >= 'a' && c <= 'f':
				size = size<<4 | int64(c-'a'+10)
			case c >= 'A' && c <= 'F':
				size = size<<4 | int64(c-'A'+10)
			default:
				return pos, sum, false, ErrBadChunk
			}
		}
		if sum+size > max {
			return pos, sum, false, fasthttp.ErrBodyTooLarge
		}
		data := pos + i + 1
		if size == 0 {
			// Trailer lines, then a blank line.
			p := data
			for {
				k := bytes.IndexByte(buf[p:], '\n')
				if k < 0 {
					if len(buf)-p > MaxHeaderBytes {
						return pos, sum, false, ErrBadChunk
					}
					return pos, sum, false, nil
				}
				if k == 0 || buf[p+k-1] != '\r' {
					return pos, sum, false, ErrBadChunk
				}
				if k == 1 {
					return p + 2, sum, true, nil
				}
				p += k + 1
			}
		}
		next := data + int(size) + 2
		if len(buf) < next {
			return pos, sum, false, nil
		}
		if buf[next-2] != '\r' || buf[next-1] != '\n' {
			return pos, sum, false, ErrBadChunk
		}
		sum += size
		pos = next
	}
}

// AppendChunk appends p as one chunk of a chunked body.
func AppendChunk(dst, p []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(p)), 16)
	dst = append(dst, "\r\n"...)
	dst = append(dst, p...)
	return append(dst, "\r\n"...)
}

// feed decodes p, passing the data to out. It returns how many bytes of p
// it used (all of p unless the body ends in it), whether the body ended,
// and fasthttp.ErrBodyTooLarge as soon as a chunk size takes the body past
// max, ErrBadChunk, or out's error.
func (d *ChunkDecoder) Feed(p []byte, max int64, out func([]byte) error) (int, bool, error) {
	i := 0
	for i < len(p) {
		switch d.state {
		case chunkData:
			n := int(min(int64(len(p)-i), d.left))
			if err := out(p[i : i+n]); err != nil {
				return i, false, err
			}
			i += n
			d.left -= int64(n)
			if d.left == 0 {
				d.state = chunkDataEnd
			}
		case chunkDataEnd:
			d.line = append(d.line, p[i])
			i++
			if len(d.line) == 2 {
				if d.line[0] != '\r' || d.line[1] != '\n' {
					return i, false, ErrBadChunk
				}
				d.line = d.line[:0]
				d.state = chunkSize
			}
		default: // a line
			j := i
			for j < len(p) && p[j] != '\n' {
				j++
			}
			d.line = append(d.line, p[i:j]...)
			limit := maxChunkLine
			if d.state == chunkTrailer {
				limit = MaxHeaderBytes - d.trail
			}
			if len(d.line) > limit {
				return j, false, ErrBadChunk
			}
			if j == len(p) {
				return j, false, nil // the line goes on in the next piece
			}
			i = j + 1
			line := d.line
			d.line = d.line[:0]
			if len(line) == 0 || line[len(line)-1] != '\r' {
				return i, false, ErrBadChunk // bare LF
			}
			line = line[:len(line)-1]
			if d.state == chunkTrailer {
				if len(line) == 0 {
					return i, true, nil
				}
				d.trail += len(line) + 2
				continue
			}
			size, ok := chunkSizeOf(line)
			if !ok {
				return i, false, ErrBadChunk
			}
			if d.sum+size > max {
				return i, false, fasthttp.ErrBodyTooLarge
			}
			d.sum += size
			if size == 0 {
				d.state = chunkTrailer
			} else {
				d.state, d.left = chunkData, size
			}
		}
	}
	return i, false, nil
}
