package scoring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

func testFrame(kind byte, payload []byte) []byte {
	f := make([]byte, frameHeader, frameHeader+len(payload))
	binary.BigEndian.PutUint32(f, uint32(len(payload)))
	f[4] = kind
	return append(f, payload...)
}

// TestReadReplyHeld reads a reply's D and L frames and the reply in one
// piece, a byte at a time, and across buffer growth: every held payload and
// the reply come out whole, and nothing after the reply is lost.
func TestReadReplyHeld(t *testing.T) {
	p := &pyPool{srv: &Server{dc: &collector{}, tel: &telemetry{}}}
	big := bytes.Repeat([]byte("0123456789"), 20000) // past the buffer: it grows
	sides := []sideFrame{{kindRecord, []byte("rec one")}, {kindPrints, []byte("printed")}, {kindRecord, big}, {kindRecord, nil}}
	var wire []byte
	for _, f := range sides {
		wire = append(wire, testFrame(f.kind, f.payload)...)
	}
	wire = append(wire, testFrame(kindOK, []byte(`[1,2]`))...)
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(wire) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(wire)) },
		"halves":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(wire)) },
	}
	// The reply's first bytes read with the reply before it (pre).
	for _, k := range []int{3, 7, 40, len(wire) / 2, len(wire)} {
		readers["pre of "+strconv.Itoa(k)] = func() io.Reader { return bytes.NewReader(wire[k:]) }
	}
	for name, r := range readers {
		var pre []byte
		if k, ok := strings.CutPrefix(name, "pre of "); ok {
			n, _ := strconv.Atoi(k)
			pre = wire[:n]
		}
		for _, bufSize := range []int{0, 4096, 1 << 20} {
			kind, payload, _, extra, held, err := p.readReplyHeld(r(), make([]byte, 0, bufSize), pre, nil)
			if err != nil || kind != kindOK || string(payload) != `[1,2]` || len(extra) != 0 {
				t.Fatalf("%s, buffer %d: kind %q payload %q extra %d, %v", name, bufSize, kind, payload, len(extra), err)
			}
			if len(held) != len(sides) {
				t.Fatalf("%s, buffer %d: %d frames held, want %d", name, bufSize, len(held), len(sides))
			}
			for i, f := range held {
				if f.kind != sides[i].kind || !bytes.Equal(f.payload, sides[i].payload) {
					t.Fatalf("%s, buffer %d: frame %d is %q of %d bytes, want %q of %d", name, bufSize, i, f.kind, len(f.payload), sides[i].kind, len(sides[i].payload))
				}
			}
		}
	}
	// What arrives after the reply is returned as extra.
	_, _, _, extra, _, err := p.readReplyHeld(bytes.NewReader(append(append([]byte(nil), wire...), 'x')), nil, nil, nil)
	if err != nil || string(extra) != "x" {
		t.Fatalf("extra %q, %v; want \"x\"", extra, err)
	}
	// Cut short: in a frame, an unexpected EOF; between frames, EOF; the
	// frames before the cut are held.
	cut := len(testFrame(kindRecord, []byte("rec one")))
	_, _, _, _, held, err := p.readReplyHeld(bytes.NewReader(wire[:cut+3]), nil, nil, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(held) != 1 {
		t.Fatalf("cut in a header: %d held, %v; want 1 and an unexpected EOF", len(held), err)
	}
	if _, _, _, _, held, err = p.readReplyHeld(bytes.NewReader(wire[:cut]), nil, nil, nil); err != io.EOF || len(held) != 1 {
		t.Fatalf("cut between frames: %d held, %v; want 1 and EOF", len(held), err)
	}
	// A D frame with collection off is a protocol error.
	off := &pyPool{srv: &Server{tel: &telemetry{}}}
	if _, _, _, _, _, err = off.readReplyHeld(bytes.NewReader(wire), nil, nil, nil); !errors.Is(err, errProtocol) {
		t.Fatalf("a record with collection off: %v, want a protocol error", err)
	}
	// A length past maxFrame is refused before anything is allocated.
	bad := testFrame(kindOK, nil)
	binary.BigEndian.PutUint32(bad, maxFrame+1)
	if _, _, _, _, _, err = p.readReplyHeld(bytes.NewReader(bad), nil, nil, nil); !errors.Is(err, errProtocol) {
		t.Fatalf("a frame past maxFrame: %v, want a protocol error", err)
	}
}

// FuzzReadReplyHeld: reading a reply's frames in place, in chunks of any
// size, holds the frames and returns the reply that reading them one by
// one (readReply, which hands them over as it goes) does, and fails where
// it fails.
func FuzzReadReplyHeld(f *testing.F) {
	f.Add(append(testFrame(kindRecord, []byte("rec")), testFrame(kindOK, []byte("[1]"))...), uint8(1))
	f.Add(append(append(testFrame(kindPrints, []byte("p")), testFrame(kindRecord, nil)...), testFrame(kindError, nil)...), uint8(3))
	f.Add(testFrame(kindOK, nil), uint8(0))
	f.Add([]byte{0, 0, 0, 9, 'D', 1}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		p := &pyPool{srv: &Server{dc: &collector{}, tel: &telemetry{}}}
		// The reference: readFrameAfter frame by frame, as readReply.
		var want []sideFrame
		var wkind byte
		var wpayload, wextra []byte
		var werr error
		pre := []byte(nil)
		r := bytes.NewReader(data)
		for {
			var kind byte
			var payload, extra []byte
			kind, payload, _, extra, werr = readFrameAfter(r, nil, pre)
			if werr == nil && isSide(kind) {
				werr = p.srv.checkSide(kind, uint32(len(payload)))
				if werr == nil {
					want = append(want, sideFrame{kind, append([]byte(nil), payload...)})
					pre = append([]byte(nil), extra...)
					continue
				}
			}
			wkind, wpayload, wextra = kind, payload, extra
			break
		}
		var rd io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			rd = &chunkReader{data: data, n: int(chunk)}
		}
		kind, payload, _, extra, held, err := p.readReplyHeld(rd, nil, nil, nil)
		if (err == nil) != (werr == nil) || (err != nil && errors.Is(err, errProtocol) != errors.Is(werr, errProtocol)) {
			t.Fatalf("error %v, want %v", err, werr)
		}
		if len(held) != len(want) {
			t.Fatalf("%d frames held, want %d", len(held), len(want))
		}
		for i := range held {
			if held[i].kind != want[i].kind || !bytes.Equal(held[i].payload, want[i].payload) {
				t.Fatalf("frame %d: %q %q, want %q %q", i, held[i].kind, held[i].payload, want[i].kind, want[i].payload)
			}
		}
		if err != nil {
			return
		}
		if kind != wkind || !bytes.Equal(payload, wpayload) {
			t.Fatalf("reply %q %q, want %q %q", kind, payload, wkind, wpayload)
		}
		// What was read after the reply (reads are greedy up to a
		// header) is the input's next bytes, for both.
		end := frameHeader + len(payload)
		for _, h := range held {
			end += frameHeader + len(h.payload)
		}
		if !bytes.HasPrefix(data[end:], extra) || !bytes.HasPrefix(data[end:], wextra) {
			t.Fatalf("extra %q and %q, want a prefix of %q", extra, wextra, data[end:])
		}
	})
}

// chunkReader returns at most n bytes a read.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}
