package scoring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// A ModelDataCollector record's values arrive as Python marshal data
// (version 2 or 4) of the tuple (timestamp, correlation id, rows), rows being
// lists of str, int, float, bool and None (the collector converts other
// cells first). The server writes them as the CSV rows v1 wrote, byte for
// byte what Python's csv.writer(lineterminator="\n") writes for
// [timestamp, correlation id, *row]: numbers as Python's str() of them,
// True and False, None as an empty field, and a field quoted (quotes
// doubled) when it holds a comma, a quote or a newline.

// maxRecordCSV bounds the CSV rows of one record (with its metadata), as
// the collector bounds what it sends: a larger record is refused.
const maxRecordCSV = 4 << 20

// maxIntDigits is Python's limit on converting an int to decimal text
// (sys.int_info.default_max_str_digits): csv.writer fails on a longer one.
const maxIntDigits = 4300

// maxLongDigits is how many 15-bit digits of a marshalled int can hold
// maxIntDigits decimal digits.
const maxLongDigits = maxIntDigits*100000/451545 + 1 // log2(10)/15 = 0.221462...

// Python marshal type codes (Python/marshal.c).
const (
	pmNone        = 'N'
	pmFalse       = 'F'
	pmTrue        = 'T'
	pmInt         = 'i'
	pmLong        = 'l'
	pmBinaryFloat = 'g'
	pmUnicode     = 'u'
	pmInterned    = 't'
	pmASCII       = 'a'
	pmASCIIIntern = 'A'
	pmShortASCII  = 'z'
	pmShortASCIIi = 'Z'
	pmTuple       = '('
	pmSmallTuple  = ')'
	pmList        = '['
	pmRef         = 'r'
	pmFlagRef     = 0x80
)

// pyScalar is one value of marshal data as pyDecoder reads it: a scalar
// (kind one of the codes above, text holding a str's UTF-8 or a long's
// decimal digits), or the start of a sequence (kind pmList, n items, read
// next).
type pyScalar struct {
	kind byte
	i    int64
	f    float64
	text []byte
	n    int
	// ref is the slot of a sequence that may be referenced (-1 for none),
	// filled once its items are read; resume, for a sequence read through
	// a reference, is where the data goes on after its items.
	ref, resume int
}

// pyDecoder writes the marshal data of a record as CSV rows as it reads
// it (no tree of values): two levels of sequences at most below the top.
// A reference (marshal's back-reference to a value seen before) is read
// again where the value was.
type pyDecoder struct {
	data []byte
	p    int
	// refs holds the offset of each referable value's code byte, filled
	// tells which are complete (a sequence's slot is taken before its
	// items); kept from record to record by a collector's writer.
	refs   []int
	filled []bool
	// replay counts the references being read again: their values'
	// slots were taken the first time.
	replay int
	// prefix is the record's timestamp and correlation id as the first
	// two fields of its rows.
	prefix []byte
}

var errMarshalShort = errors.New("the marshal data is cut short")

func (d *pyDecoder) u32() (uint32, error) {
	if len(d.data)-d.p < 4 {
		return 0, errMarshalShort
	}
	v := binary.LittleEndian.Uint32(d.data[d.p:])
	d.p += 4
	return v, nil
}

func (d *pyDecoder) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.data)-d.p {
		return nil, errMarshalShort
	}
	b := d.data[d.p : d.p+n : d.p+n]
	d.p += n
	return b, nil
}

// isSeq tells the codes of sequences.
func isSeq(typ byte) bool { return typ == pmList || typ == pmTuple || typ == pmSmallTuple }

// value reads one value; depth is how many sequences may still nest. A
// sequence's items are read next by the caller, which then calls endSeq.
func (d *pyDecoder) value(depth int, v *pyScalar) error {
	*v = pyScalar{ref: -1, resume: -1}
	if d.p >= len(d.data) {
		return errMarshalShort
	}
	at := d.p
	code := d.data[d.p]
	d.p++
	typ := code &^ pmFlagRef
	if code&pmFlagRef != 0 && d.replay == 0 {
		if len(d.refs) >= 1<<20 {
			return errors.New("the marshal data has too many references")
		}
		v.ref = len(d.refs)
		d.refs = append(d.refs, at)
		d.filled = append(d.filled, false)
	}
	v.kind = typ
	switch typ {
	case pmNone, pmTrue, pmFalse:
	case pmInt:
		u, err := d.u32()
		if err != nil {
			return err
		}
		v.i = int64(int32(u))
	case pmLong:
		u, err := d.u32()
		if err != nil {
			return err
		}
		n := int64(int32(u))
		neg := n < 0
		if neg {
			n = -n
		}
		if 2*n > int64(len(d.data)-d.p) {
			return errMarshalShort
		}
		// 15 bits a digit: more digits than this make more than
		// maxIntDigits decimal ones.
		if n > maxLongDigits {
			return fmt.Errorf("an int of more than %d digits; Python writes at most %d", maxIntDigits, maxIntDigits)
		}
		x, digit := new(big.Int), new(big.Int)
		digits := d.data[d.p:]
		for k := n - 1; k >= 0; k-- {
			dg := binary.LittleEndian.Uint16(digits[2*k:])
			if dg >= 1<<15 {
				return errors.New("an int has a digit out of range")
			}
			x.Lsh(x, 15)
			x.Or(x, digit.SetUint64(uint64(dg)))
		}
		d.p += int(2 * n)
		if neg {
			x.Neg(x)
		}
		v.text = x.Append(nil, 10)
		if digits := len(v.text) - btoi(neg); digits > maxIntDigits {
			return fmt.Errorf("an int of %d digits; Python writes at most %d", digits, maxIntDigits)
		}
	case pmBinaryFloat:
		if len(d.data)-d.p < 8 {
			return errMarshalShort
		}
		v.f = math.Float64frombits(binary.LittleEndian.Uint64(d.data[d.p:]))
		d.p += 8
	case pmShortASCII, pmShortASCIIi:
		if d.p >= len(d.data) {
			return errMarshalShort
		}
		n := int(d.data[d.p])
		d.p++
		b, err := d.take(n)
		if err != nil {
			return err
		}
		v.kind, v.text = pmUnicode, b
	case pmASCII, pmASCIIIntern, pmUnicode, pmInterned:
		u, err := d.u32()
		if err != nil {
			return err
		}
		b, err := d.take(int(int32(u)))
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return errors.New("a string is not valid UTF-8 (it holds a lone surrogate)")
		}
		v.kind, v.text = pmUnicode, b
	case pmList, pmTuple, pmSmallTuple:
		if depth == 0 {
			return errors.New("a value nests deeper than rows of cells")
		}
		var n int
		if typ == pmSmallTuple {
			if d.p >= len(d.data) {
				return errMarshalShort
			}
			n = int(d.data[d.p])
			d.p++
		} else {
			u, err := d.u32()
			if err != nil {
				return err
			}
			n = int(int32(u))
		}
		// Every item takes a byte at least.
		if n < 0 || n > len(d.data)-d.p {
			return errMarshalShort
		}
		v.kind, v.n = pmList, n
		return nil // filled by endSeq
	case pmRef:
		u, err := d.u32()
		if err != nil {
			return err
		}
		if uint64(u) >= uint64(len(d.refs)) || !d.filled[u] {
			return fmt.Errorf("a reference to value %d, which is not there (yet)", u)
		}
		target := d.refs[u]
		if v.ref >= 0 {
			// A reference that may be referenced: the same value.
			d.refs[v.ref], d.filled[v.ref] = target, true
		}
		if isSeq(d.data[target]&^pmFlagRef) && depth == 0 {
			return errors.New("a value nests deeper than rows of cells")
		}
		// Read the value again where it was (it was read whole then).
		resume := d.p
		d.p = target
		d.replay++
		if err := d.value(depth, v); err != nil || v.kind != pmList {
			d.replay--
			d.p = resume
			return err
		}
		v.resume = resume // endSeq goes back
		return nil
	default:
		return fmt.Errorf("a value of marshal type %q; want str, int, float, bool, None or a list", typ)
	}
	if v.ref >= 0 {
		d.filled[v.ref] = true
	}
	return nil
}

// endSeq ends a sequence whose items were read.
func (d *pyDecoder) endSeq(v pyScalar) {
	if v.ref >= 0 {
		d.filled[v.ref] = true
	}
	if v.resume >= 0 {
		d.replay--
		d.p = v.resume
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// appendDCRows appends the CSV rows of a record's marshal data to dst; a
// malformed or too large record appends nothing and is an error naming
// what is wrong.
func appendDCRows(dst, data []byte) ([]byte, error) {
	var d pyDecoder
	return d.appendRows(dst, data)
}

var errNotRecord = errors.New("the values are not (timestamp, correlation id, rows)")

// appendRows is appendDCRows with d's memory (kept for the next record).
func (d *pyDecoder) appendRows(dst, data []byte) ([]byte, error) {
	d.data, d.p, d.replay = data, 0, 0
	d.refs, d.filled = d.refs[:0], d.filled[:0]
	start := len(dst)
	out, err := d.rows(dst)
	d.data = nil
	if err == nil && d.p < len(data) {
		err = fmt.Errorf("%d bytes after the marshal data", len(data)-d.p)
	}
	switch {
	case err == errTooLarge:
		return dst[:start], fmt.Errorf("the record's CSV rows exceed the limit of %d bytes", maxRecordCSV)
	case err != nil:
		return dst[:start], fmt.Errorf("%w: record values: %v", errProtocol, err)
	}
	return out, nil
}

var errTooLarge = errors.New("too large")

// rows reads (timestamp, correlation id, rows) and appends the rows.
func (d *pyDecoder) rows(dst []byte) ([]byte, error) {
	start := len(dst)
	var top, ts, cid, rows, row, cell pyScalar
	if err := d.value(3, &top); err != nil {
		return dst, err
	}
	if top.kind != pmList || top.n != 3 {
		return dst, errNotRecord
	}
	if err := d.value(2, &ts); err != nil {
		return dst, err
	}
	if ts.kind != pmUnicode {
		return dst, errNotRecord
	}
	if err := d.value(2, &cid); err != nil {
		return dst, err
	}
	if cid.kind != pmUnicode {
		return dst, errNotRecord
	}
	d.prefix = appendCSVText(d.prefix[:0], ts.text)
	d.prefix = append(d.prefix, ',')
	d.prefix = appendCSVText(d.prefix, cid.text)
	if err := d.value(2, &rows); err != nil {
		return dst, err
	}
	if rows.kind != pmList {
		return dst, errNotRecord
	}
	for r := range rows.n {
		if err := d.value(1, &row); err != nil {
			return dst, err
		}
		if row.kind != pmList {
			return dst, fmt.Errorf("row %d is not a list", r)
		}
		dst = append(dst, d.prefix...)
		for range row.n {
			if err := d.value(0, &cell); err != nil {
				return dst, err
			}
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
			}
			if len(dst)-start > maxRecordCSV {
				return dst, errTooLarge
			}
		}
		d.endSeq(row)
		dst = append(dst, '\n')
		if len(dst)-start > maxRecordCSV {
			return dst, errTooLarge
		}
	}
	d.endSeq(rows)
	d.endSeq(top)
	return dst, nil
}

// appendCSVText appends a field as csv.writer's QUOTE_MINIMAL writes it
// with lineterminator "\n": quoted, quotes doubled, when it holds a comma,
// a quote or a newline (a carriage return alone is not quoted).
func appendCSVText(dst, s []byte) []byte {
	if !csvQuoted(s) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for _, c := range s {
		if c == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// csvQuoted tells whether s holds a comma, a quote or a newline, eight
// bytes at a time (the classic test of "has a zero byte", of s^commas,
// s^quotes and s^newlines, sets some high bit exactly when it has).
func csvQuoted(s []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		c, q, n := x^(ones*','), x^(ones*'"'), x^(ones*'\n')
		if ((c-ones)&^c|(q-ones)&^q|(n-ones)&^n)&highs != 0 {
			return true
		}
	}
	for _, c := range s[i:] {
		if c == ',' || c == '"' || c == '\n' {
			return true
		}
	}
	return false
}

// appendPyFloat appends f as Python's repr (and str, and csv.writer)
// writes it: the shortest digits that read back as f, in positional
// notation for exponents from -4 to 15 (with ".0" when whole), else as
// d.ddde±XX.
func appendPyFloat(dst []byte, f float64) []byte {
	// Positional notation: Go's shortest 'f' digits are Python's, with
	// ".0" added to a whole number.
	if a := math.Abs(f); a >= 1e-4 && a < 1e16 {
		if a < 1<<30 {
			// A value written with at most 6 decimals (1.5, 0.25, 42.0).
			if out, ok := appendShortDecimal(dst, f, a); ok {
				return out
			}
		}
		n := len(dst)
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
		if bytes.IndexByte(dst[n:], '.') < 0 {
			dst = append(dst, ".0"...)
		}
		return dst
	}
	return appendPyFloatDigits(dst, f)
}

// appendShortDecimal appends f (a = |f|, 1e-4 <= a < 2^30) as
// appendPyFloat does when f is the double nearest a decimal with at most 6
// digits after the point, and tells whether it was. Then the shortest
// digits of f are those of that decimal with the fewest such digits:
// below 2^30 the doubles are less than 1e-6 apart, so at most one decimal
// of 6 digits after the point rounds to f, and a*1e6 is within 0.13 of it
// (half a spacing of doubles times 1e6, and the product's rounding), so
// rounding a*1e6 finds it; its trailing zeros cut give the shortest.
func appendShortDecimal(dst []byte, f, a float64) ([]byte, bool) {
	m := math.Round(a * 1e6)
	if m/1e6 != a {
		return dst, false
	}
	// Cut the trailing zeros, at most 6: three, then two, then one.
	u := uint64(m)
	k := 6 // digits after the point
	if u%1000 == 0 {
		u, k = u/1000, 3
	}
	if k >= 2 && u%100 == 0 {
		u, k = u/100, k-2
	}
	if k >= 1 && u%10 == 0 {
		u, k = u/10, k-1
	}
	if f < 0 {
		dst = append(dst, '-')
	}
	if k == 0 {
		return append(strconv.AppendUint(dst, u, 10), ".0"...), true
	}
	var buf [24]byte
	i := len(buf)
	for range k {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
	}
	i--
	buf[i] = '.'
	for {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	return append(dst, buf[i:]...), true
}

// appendPyFloatDigits is appendPyFloat from the shortest digits and
// exponent, for any f.
func appendPyFloatDigits(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "nan"...)
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // -d.ddde±XX
	if e[0] == '-' {
		dst = append(dst, '-')
		e = e[1:]
	}
	var digits [24]byte
	nd := 0
	i := 0
	for ; e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[nd] = e[i]
			nd++
		}
	}
	exp, _ := strconv.Atoi(string(e[i+1:]))
	dg := digits[:nd]
	decpt := exp + 1 // the value is 0.<digits> × 10^decpt
	switch {
	case decpt <= -4 || decpt > 16:
		dst = append(dst, dg[0])
		if nd > 1 {
			dst = append(dst, '.')
			dst = append(dst, dg[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	case decpt <= 0:
		dst = append(dst, "0."...)
		for range -decpt {
			dst = append(dst, '0')
		}
		return append(dst, dg...)
	case decpt >= nd:
		dst = append(dst, dg...)
		for range decpt - nd {
			dst = append(dst, '0')
		}
		return append(dst, ".0"...)
	default:
		dst = append(dst, dg[:decpt]...)
		dst = append(dst, '.')
		return append(dst, dg[decpt:]...)
	}
}
