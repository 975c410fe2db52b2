package pki

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"strings"
)

// MaxPEMSize is the largest certificate or key file the package reads: far
// more than a long chain needs, and a bound on the work a file can cause.
const MaxPEMSize = 1 << 20

// block is one PEM block and the line of the input its BEGIN line is on.
type block struct {
	*pem.Block
	line int
}

var beginMarker = []byte("-----BEGIN ")

// decodeAll returns the PEM blocks of data in order. Text outside the blocks
// (openssl's "Bag Attributes" and "subject=" lines, comments) is skipped, but
// a BEGIN line that does not start a well-formed block (a truncated file, a
// block whose END line names another type, bad base64) is an error naming
// its line. The input is checked against MaxPEMSize and for emptiness first.
// Work is linear in len(data).
func decodeAll(data []byte) ([]block, error) {
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("is %d bytes; the limit is %d bytes (1 MiB)", len(data), MaxPEMSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("is empty: it must hold PEM blocks (-----BEGIN ...-----)")
	}
	var out []block
	rest := data
	line := 1 // line number of rest[0]
	for len(rest) > 0 {
		b, after := pem.Decode(rest)
		if b == nil {
			if at := beginLine(rest); at >= 0 {
				return nil, malformed(rest, line, at)
			}
			break
		}
		consumed := rest[:len(rest)-len(after)]
		// The decoded block starts at the last BEGIN line of what Decode
		// consumed; a BEGIN line before it began a block Decode skipped.
		start := lastBeginLine(consumed)
		if start < 0 {
			// pem.Decode also accepts a BEGIN right after a skipped END.
			start = max(bytes.LastIndex(consumed, beginMarker), 0)
		}
		if at := beginLine(consumed[:start]); at >= 0 {
			return nil, malformed(consumed, line, at)
		}
		out = append(out, block{Block: b, line: line + bytes.Count(consumed[:start], []byte{'\n'})})
		line += bytes.Count(consumed, []byte{'\n'})
		rest = after
	}
	return out, nil
}

// malformed describes the bad block starting at text[at], text starting on
// line line of the input.
func malformed(text []byte, line, at int) error {
	l := line + bytes.Count(text[:at], []byte{'\n'})
	first := text[at:]
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	return fmt.Errorf("line %d: %q does not begin a well-formed PEM block (truncated, no matching END line, or bad base64)",
		l, shorten(strings.TrimSpace(string(first)), 64))
}

// beginLine returns the offset of the first "-----BEGIN " at the start of a
// line of text, or -1.
func beginLine(text []byte) int {
	off := 0
	for {
		i := bytes.Index(text[off:], beginMarker)
		if i < 0 {
			return -1
		}
		i += off
		if i == 0 || text[i-1] == '\n' {
			return i
		}
		off = i + 1
	}
}

// lastBeginLine returns the offset of the last "-----BEGIN " at the start of
// a line of text, or -1.
func lastBeginLine(text []byte) int {
	end := len(text)
	for {
		i := bytes.LastIndex(text[:end], beginMarker)
		if i < 0 {
			return -1
		}
		if i == 0 || text[i-1] == '\n' {
			return i
		}
		end = i
	}
}

// typesOf lists the distinct block types of blocks, in order of first
// appearance, for "found: ..." in messages.
func typesOf(blocks []block) string {
	var types []string
	seen := map[string]bool{}
	for _, b := range blocks {
		if !seen[b.Type] {
			seen[b.Type] = true
			types = append(types, shorten(b.Type, 40))
		}
	}
	return strings.Join(types, ", ")
}

// noBlock explains a file without the wanted block: what it holds instead,
// or a hint when it looks like DER rather than PEM.
func noBlock(data []byte, blocks []block, want string) string {
	if len(blocks) > 0 {
		return fmt.Sprintf("no PEM %s block found (found: %s)", want, typesOf(blocks))
	}
	if len(data) > 0 && data[0] == 0x30 {
		return fmt.Sprintf("no PEM %s block found (found: no PEM blocks; the file looks like binary DER: convert it with openssl x509 -inform der or openssl pkey -inform der)", want)
	}
	return fmt.Sprintf("no PEM %s block found (found: no PEM blocks)", want)
}

// shorten cuts s to at most n bytes for quoting in a message.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
