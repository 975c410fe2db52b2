package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// The tree decoder the server used before its streaming one
// (pyDecoder): decodes a record's marshal data whole, then writes its
// rows. Kept as the reference the streaming decoder is fuzzed against.

// refValue is a decoded marshal value: a scalar (kind one of the codes
// above, text holding a str's UTF-8 or a long's decimal digits) or a
// sequence (kind pmList, items).
type refValue struct {
	kind  byte
	i     int64
	f     float64
	text  []byte
	items []refValue
}

// refDecoder decodes the marshal data of a record: two levels of sequences
// at most below the top.
type refDecoder struct {
	p []byte
	// arena holds the items of sequences; kept (with refs) from record
	// to record by a collector's writer.
	arena []refValue
	refs  []refValue
	// filled tells which refs are complete (a sequence's ref is taken
	// before its items).
	filled []bool
}

func (d *refDecoder) u32() (uint32, error) {
	if len(d.p) < 4 {
		return 0, errMarshalShort
	}
	v := binary.LittleEndian.Uint32(d.p)
	d.p = d.p[4:]
	return v, nil
}

func (d *refDecoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.p) {
		return nil, errMarshalShort
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b, nil
}

// value decodes one value; depth is how many sequences may still nest.
func (d *refDecoder) value(depth int) (refValue, error) {
	if len(d.p) == 0 {
		return refValue{}, errMarshalShort
	}
	code := d.p[0]
	d.p = d.p[1:]
	typ := code &^ pmFlagRef
	ref := -1
	if code&pmFlagRef != 0 {
		if len(d.refs) >= 1<<20 {
			return refValue{}, errors.New("the marshal data has too many references")
		}
		ref = len(d.refs)
		d.refs = append(d.refs, refValue{})
		d.filled = append(d.filled, false)
	}
	v := refValue{kind: typ}
	switch typ {
	case pmNone, pmTrue, pmFalse:
	case pmInt:
		u, err := d.u32()
		if err != nil {
			return v, err
		}
		v.i = int64(int32(u))
	case pmLong:
		u, err := d.u32()
		if err != nil {
			return v, err
		}
		n := int64(int32(u))
		neg := n < 0
		if neg {
			n = -n
		}
		if 2*n > int64(len(d.p)) {
			return v, errMarshalShort
		}
		// 15 bits a digit: more digits than this make more than
		// maxIntDigits decimal ones.
		if n > maxLongDigits {
			return v, fmt.Errorf("an int of more than %d digits; Python writes at most %d", maxIntDigits, maxIntDigits)
		}
		x, digit := new(big.Int), new(big.Int)
		for k := n - 1; k >= 0; k-- {
			dg := binary.LittleEndian.Uint16(d.p[2*k:])
			if dg >= 1<<15 {
				return v, errors.New("an int has a digit out of range")
			}
			x.Lsh(x, 15)
			x.Or(x, digit.SetUint64(uint64(dg)))
		}
		d.p = d.p[2*n:]
		if neg {
			x.Neg(x)
		}
		v.text = x.Append(nil, 10)
		if digits := len(v.text) - btoi(neg); digits > maxIntDigits {
			return v, fmt.Errorf("an int of %d digits; Python writes at most %d", digits, maxIntDigits)
		}
	case pmBinaryFloat:
		if len(d.p) < 8 {
			return v, errMarshalShort
		}
		v.f = math.Float64frombits(binary.LittleEndian.Uint64(d.p))
		d.p = d.p[8:]
	case pmShortASCII, pmShortASCIIi:
		if len(d.p) < 1 {
			return v, errMarshalShort
		}
		n := int(d.p[0])
		d.p = d.p[1:]
		b, err := d.take(n)
		if err != nil {
			return v, err
		}
		v.kind, v.text = pmUnicode, b
	case pmASCII, pmASCIIIntern, pmUnicode, pmInterned:
		u, err := d.u32()
		if err != nil {
			return v, err
		}
		b, err := d.take(int(int32(u)))
		if err != nil {
			return v, err
		}
		if !utf8.Valid(b) {
			return v, errors.New("a string is not valid UTF-8 (it holds a lone surrogate)")
		}
		v.kind, v.text = pmUnicode, b
	case pmList, pmTuple, pmSmallTuple:
		if depth == 0 {
			return v, errors.New("a value nests deeper than rows of cells")
		}
		var n int
		if typ == pmSmallTuple {
			if len(d.p) < 1 {
				return v, errMarshalShort
			}
			n = int(d.p[0])
			d.p = d.p[1:]
		} else {
			u, err := d.u32()
			if err != nil {
				return v, err
			}
			n = int(int32(u))
		}
		// Every item takes a byte at least.
		if n < 0 || n > len(d.p) {
			return v, errMarshalShort
		}
		v.kind = pmList
		if n <= 1024 {
			// From the arena: the slots are taken before the items, so
			// the items of nested sequences come after them.
			if len(d.arena)+n > cap(d.arena) {
				d.arena = make([]refValue, 0, max(4096, 2*n))
			}
			v.items = d.arena[len(d.arena) : len(d.arena)+n : len(d.arena)+n]
			d.arena = d.arena[:len(d.arena)+n]
			for k := range v.items {
				it, err := d.value(depth - 1)
				if err != nil {
					return v, err
				}
				v.items[k] = it
			}
			break
		}
		// Grown as items arrive: a count is not trusted with memory.
		v.items = make([]refValue, 0, 1024)
		for range n {
			it, err := d.value(depth - 1)
			if err != nil {
				return v, err
			}
			v.items = append(v.items, it)
		}
	case pmRef:
		u, err := d.u32()
		if err != nil {
			return v, err
		}
		if uint64(u) >= uint64(len(d.refs)) || !d.filled[u] {
			return v, fmt.Errorf("a reference to value %d, which is not there (yet)", u)
		}
		v = d.refs[u]
		if v.kind == pmList && depth == 0 {
			return v, errors.New("a value nests deeper than rows of cells")
		}
	default:
		return v, fmt.Errorf("a value of marshal type %q; want str, int, float, bool, None or a list", typ)
	}
	if ref >= 0 {
		d.refs[ref], d.filled[ref] = v, true
	}
	return v, nil
}

// refAppendDCRows appends the CSV rows of a record's marshal data to dst; a
// malformed or too large record appends nothing and is an error naming
// what is wrong.
func refAppendDCRows(dst, data []byte) ([]byte, error) {
	var d refDecoder
	return d.appendRows(dst, data)
}

// appendRows is refAppendDCRows with d's memory (kept for the next record).
func (d *refDecoder) appendRows(dst, data []byte) ([]byte, error) {
	clear(d.arena)
	clear(d.refs)
	d.p, d.arena, d.refs, d.filled = data, d.arena[:0], d.refs[:0], d.filled[:0]
	defer func() { d.p = nil }()
	top, err := d.value(3)
	if err == nil && len(d.p) > 0 {
		err = fmt.Errorf("%d bytes after the marshal data", len(d.p))
	}
	if err == nil && (top.kind != pmList || len(top.items) != 3 || top.items[0].kind != pmUnicode ||
		top.items[1].kind != pmUnicode || top.items[2].kind != pmList) {
		err = errors.New("the values are not (timestamp, correlation id, rows)")
	}
	if err != nil {
		return dst, fmt.Errorf("%w: record values: %v", errProtocol, err)
	}
	start := len(dst)
	ts, cid := top.items[0].text, top.items[1].text
	for r, row := range top.items[2].items {
		if row.kind != pmList {
			return dst[:start], fmt.Errorf("%w: record values: row %d is not a list", errProtocol, r)
		}
		dst = appendCSVText(dst, ts)
		dst = append(dst, ',')
		dst = appendCSVText(dst, cid)
		for c, cell := range row.items {
			dst = append(dst, ',')
			switch cell.kind {
			case pmUnicode:
				dst = appendCSVText(dst, cell.text)
			case pmNone:
			case pmTrue:
				dst = append(dst, "True"...)
			case pmFalse:
				dst = append(dst, "False"...)
			case pmInt:
				dst = strconv.AppendInt(dst, cell.i, 10)
			case pmLong:
				dst = append(dst, cell.text...)
			case pmBinaryFloat:
				dst = appendPyFloat(dst, cell.f)
			default:
				return dst[:start], fmt.Errorf("%w: record values: row %d column %d is not a str, int, float, bool or None", errProtocol, r, c)
			}
			if len(dst)-start > maxRecordCSV {
				return dst[:start], fmt.Errorf("the record's CSV rows exceed the limit of %d bytes", maxRecordCSV)
			}
		}
		dst = append(dst, '\n')
		if len(dst)-start > maxRecordCSV {
			return dst[:start], fmt.Errorf("the record's CSV rows exceed the limit of %d bytes", maxRecordCSV)
		}
	}
	return dst, nil
}
