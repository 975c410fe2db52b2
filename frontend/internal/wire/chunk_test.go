package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzChunkDecoder checks the chunked-body decoder used for spilled bodies,
// fed in pieces, against ScanChunks, which reads bodies buffered whole:
// the same verdict (complete, incomplete, malformed, too large), the same
// end and the same size, and the data between the framing.
func FuzzChunkDecoder(f *testing.F) {
	for _, s := range []string{
		"3\r\nabc\r\n0\r\n\r\n",
		"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nGET",
		"3 \t\r\nabc\r\n0\r\n\r\n",
		"3\nabc\r\n0\r\n\r\n",
		"3\r\nabcd\r\n0\r\n\r\n",
		"ffffffffffffffff\r\n",
		"41\r\n",
		"+3\r\nabc\r\n0\r\n\r\n",
		"3\r\nab",
		"0\r\n\r",
	} {
		f.Add([]byte(s), uint8(1), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, a, b uint8) {
		if len(in) > 2048 {
			t.Skip()
		}
		const limit = 64
		pos, sum, done, err := ScanChunks(in, 0, 0, limit)
		var d ChunkDecoder
		var data []byte
		out := func(p []byte) error { data = append(data, p...); return nil }
		used, dDone := 0, false
		var dErr error
		// Pieces of sizes a, b, a, b, ... (at least 1).
		for i := 0; used < len(in) && !dDone && dErr == nil; i++ {
			step := int(a)
			if i%2 == 1 {
				step = int(b)
			}
			end := min(used+max(step, 1), len(in))
			var n int
			n, dDone, dErr = d.Feed(in[used:end], limit, out)
			used += n
			if dErr == nil && !dDone && n != end-(used-n) {
				t.Fatalf("%q: decoder used %d of a %d-byte piece without finishing", in, n, end-(used-n))
			}
		}
		if (err == nil) != (dErr == nil) || errors.Is(err, fasthttp.ErrBodyTooLarge) != errors.Is(dErr, fasthttp.ErrBodyTooLarge) {
			t.Fatalf("%q: scanChunks %v, decoder %v", in, err, dErr)
		}
		if err != nil {
			return
		}
		if done != dDone {
			t.Fatalf("%q: scanChunks done %v, decoder %v", in, done, dDone)
		}
		if !done {
			return
		}
		if used != pos || int64(len(data)) != sum {
			t.Fatalf("%q: scanChunks ends at %d with %d bytes, decoder at %d with %d", in, pos, sum, used, len(data))
		}
		var want []byte
		for p := 0; ; {
			i := bytes.Index(in[p:], []byte("\r\n"))
			size, _ := chunkSizeOf(in[p : p+i])
			if size == 0 {
				break
			}
			want = append(want, in[p+i+2:p+i+2+int(size)]...)
			p += i + 2 + int(size) + 2
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("%q: decoder data %q, want %q", in, data, want)
		}
	})
}
