package scoring

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// pyRowsScript prints, for each record, the hex of its marshal data (as
// ModelDataCollector sends it, versions 4 and 2) and the hex of what csv.writer writes for
// its rows, so the Go rows can be compared with Python's byte for byte.
const pyRowsScript = `
import csv, io, marshal, random, struct, sys
random.seed(20)
ts, cid = "2026-03-07T12:00:00.123456Z", "0b6f5e1e-1c39-4a4b-9d55-2f1f9c7a1a11"
strs = ["", "x", "a,b", 'say "hi"', "two\nlines", "cr\ronly", " lead", "trail ", "\t", "\x00", "\x1e",
        "é", "日本", "\U0001F600", "\u2028", "#", "\\", "'", ",", '"', "\n", "a" * 300]
floats = [0.0, -0.0, 1.0, -1.5, 0.1, 1/3, 1e16, 1e15, 123456789012345.6, 1e-4, 1e-5, 1.5e-7, 1e22, 1e300,
          5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, float("nan"), float("inf"), float("-inf"),
          12345678.0, 0.001, 100.0, 9007199254740993.0]
for _ in range(3000):
    floats.append(struct.unpack("<d", struct.pack("<Q", random.getrandbits(64)))[0])
    floats.append(random.uniform(-1e6, 1e6))
    floats.append(random.random() * 10 ** random.randint(-30, 30))
ints = [0, 1, -1, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**63, -2**63 - 5, 10**40, -(10**100), 2**15, 2**30, 2**45 + 7]
shared = ["shared,value", 42]
records = []
records.append((ts, cid, [[1.5, 2, "x"], [3, 4.25, "y"]]))
records.append((ts, "user, id", [[s] for s in strs]))
records.append((ts, cid, [floats[i:i + 7] for i in range(0, len(floats), 7)]))
records.append((ts, cid, [ints, [True, False, None, "", None]]))
records.append((ts, cid, [shared, shared, [shared[0], shared[0], shared[1]]]))
records.append((ts, cid, []))
records.append((ts, cid, [[]]))
records.append((ts, cid, (tuple(strs), tuple(ints))))
for rec in records:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[rec[0], rec[1], *row] for row in rec[2]])
    for version in (4, 2):  # ModelDataCollector sends both
        print(marshal.dumps(rec, version).hex(), buf.getvalue().encode("utf-8").hex())
`

func TestDCRowsMatchPythonCSV(t *testing.T) {
	out, err := exec.Command(testPython(t), "-c", pyRowsScript).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 16 {
		t.Fatalf("python printed %d records, want 8 in two marshal versions", len(lines))
	}
	for i, line := range lines {
		m, c, _ := strings.Cut(line, " ")
		data, err1 := hex.DecodeString(m)
		want, err2 := hex.DecodeString(c)
		if err1 != nil || err2 != nil {
			t.Fatalf("record %d: bad hex", i)
		}
		got, err := appendDCRows([]byte("keep"), data)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.HasPrefix(got, []byte("keep")) {
			t.Fatalf("record %d: the bytes before were not kept", i)
		}
		got = got[4:]
		if !bytes.Equal(got, want) {
			gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
			for k := range min(len(gl), len(wl)) {
				if gl[k] != wl[k] {
					t.Fatalf("record %d line %d:\n got %q\nwant %q", i, k, gl[k], wl[k])
				}
			}
			t.Fatalf("record %d: %d lines, want %d", i, len(gl), len(wl))
		}
	}
}

func TestPyFloatRepr(t *testing.T) {
	tenth := 0.1 // not a constant: 0.1 + 0.2 is then computed in float64
	for f, want := range map[float64]string{
		1: "1.0", 1e16: "1e+16", 1e15: "1000000000000000.0", 1e-4: "0.0001", 1e-5: "1e-05",
		-2.5e-300: "-2.5e-300", math.Copysign(0, -1): "-0.0", tenth + 0.2: "0.30000000000000004",
		math.NaN(): "nan", math.Inf(-1): "-inf", 123.456: "123.456", 9999999999999998: "9999999999999998.0",
		math.Nextafter(1e-4, 0): "9.999999999999999e-05", -1e-4: "-0.0001", -1e15: "-1000000000000000.0",
		math.Nextafter(1e16, 0): "9999999999999998.0", 1.5: "1.5", 4.25: "4.25",
	} {
		if got := string(appendPyFloat(nil, f)); got != want {
			t.Errorf("%v: got %q, want %q", f, got, want)
		}
	}
}

func TestDCRowsRefusesMalformedValues(t *testing.T) {
	// (ts, cid, rows) as marshal writes it, then broken in turn.
	good := []byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x02\x00\x00\x00i\x07\x00\x00\x00z\x01x")
	if got, err := appendDCRows(nil, good); err != nil || string(got) != "ts,cid,7,x\n" {
		t.Fatalf("good record: %q, %v", got, err)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"empty":          {nil, "cut short"},
		"cut":            {good[:len(good)-1], "cut short"},
		"trailing":       {append(append([]byte(nil), good...), 'N'), "1 bytes after"},
		"not a triple":   {[]byte(")\x02z\x02tsz\x03cid"), "not (timestamp, correlation id, rows)"},
		"rows not list":  {[]byte(")\x03z\x02tsz\x03cidN"), "not (timestamp, correlation id, rows)"},
		"row not list":   {[]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00N"), "row 0 is not a list"},
		"nested cell":    {[]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00[\x00\x00\x00\x00"), "nests deeper"},
		"bytes cell":     {[]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00s\x01\x00\x00\x00x"), "marshal type 's'"},
		"bad ref":        {[]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00r\x09\x00\x00\x00"), "reference to value 9"},
		"self ref":       {[]byte("\xa9\x03z\x02tsz\x03cid[\x01\x00\x00\x00r\x00\x00\x00\x00"), "reference to value 0"},
		"surrogate":      {[]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00u\x03\x00\x00\x00\xed\xa0\x80"), "lone surrogate"},
		"huge count":     {[]byte(")\x03z\x02tsz\x03cid[\xff\xff\xff\x7f"), "cut short"},
		"negative count": {[]byte(")\x03z\x02tsz\x03cid[\xff\xff\xff\xff"), "cut short"},
		"long digit":     {[]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00l\x01\x00\x00\x00\xff\xff"), "digit out of range"},
		"long too long":  {append([]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00l\xe8\x03\x00\x00"), make([]byte, 2000)...), "more than 4300 digits"},
	} {
		got, err := appendDCRows([]byte("x"), tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
		if string(got) != "x" {
			t.Errorf("%s: appended %q", name, got[1:])
		}
	}
	// Many references to one long string: refused past the limit, not
	// written out whole.
	huge := []byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x00\x10\x00\x00\xe1\x00\x00\x10\x00")
	huge = append(huge, bytes.Repeat([]byte("y"), 1<<20)...)
	for range 1<<12 - 1 {
		huge = append(huge, 'r', 0, 0, 0, 0)
	}
	if _, err := appendDCRows(nil, huge); err == nil || !strings.Contains(err.Error(), "exceed the limit") {
		t.Fatalf("huge record: %v", err)
	}
	if _, err := appendDCRows(nil, []byte("N")); !errors.Is(err, errProtocol) {
		t.Fatalf("not a record: %v, want errProtocol", err)
	}
}

func FuzzDCRows(f *testing.F) {
	f.Add([]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x02\x00\x00\x00i\x07\x00\x00\x00z\x01x"))
	f.Add([]byte(")\x03z\x02tsz\x03cid[\x02\x00\x00\x00\xdb\x02\x00\x00\x00g\x00\x00\x00\x00\x00\x00\xf8?Nr\x03\x00\x00\x00"))
	f.Add([]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00l\xfe\xff\xff\xff\x01\x00\x02\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := appendDCRows(nil, data)
		if err != nil {
			if len(out) != 0 {
				t.Fatalf("error %v with %d bytes appended", err, len(out))
			}
			return
		}
		if len(out) > maxRecordCSV+len(data) {
			t.Fatalf("%d bytes of rows from %d bytes", len(out), len(data))
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			t.Fatalf("rows %q do not end with a newline", out)
		}
	})
}

// Cells of subclasses of str, int and float (numpy.float64, an IntEnum)
// and numpy scalars are written as csv.writer wrote them.
func TestDataCollectionSubclassCells(t *testing.T) {
	root := t.TempDir()
	s := collectOnce(t, root, `
import enum
import numpy as np
from azureml.monitoring import ModelDataCollector

class S(str):
    pass

class E(enum.IntEnum):
    A = 1

def init():
    global dc
    dc = ModelDataCollector("m", designation="cells")

def run(raw_data):
    dc.collect([[np.float64(1.5), np.float32(2.5), S("a,b"), E.A, np.int64(7), True, None, "plain"]])
    return "ok"
`)
	if st := s.DataCollectionStats(); st.Written != 1 {
		t.Fatalf("stats %+v\n%s", st, strings.Join(s.Logs(0, false), "\n"))
	}
	lines := readLines(t, collectedFile(t, root, "cells"))
	if len(lines) != 1 || !strings.HasSuffix(lines[0], `,1.5,2.5,"a,b",1,7,True,,plain`) {
		t.Fatalf("rows %q", lines)
	}
}

// FuzzDCRowsMatchReference: the streaming decoder writes what the tree
// decoder it replaced wrote, and refuses what it refused.
func FuzzDCRowsMatchReference(f *testing.F) {
	f.Add([]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x02\x00\x00\x00i\x07\x00\x00\x00z\x01x"))
	f.Add([]byte(")\x03z\x02tsz\x03cid[\x02\x00\x00\x00\xdb\x02\x00\x00\x00g\x00\x00\x00\x00\x00\x00\xf8?Nr\x03\x00\x00\x00"))
	f.Add([]byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x01\x00\x00\x00l\xfe\xff\xff\xff\x01\x00\x02\x00"))
	f.Add([]byte(")\x03\xfa\x02ts\xfa\x03cid[\x03\x00\x00\x00\xdb\x02\x00\x00\x00r\x00\x00\x00\x00\xe9\x07\x00\x00\x00r\x02\x00\x00\x00\xdb\x01\x00\x00\x00r\x01\x00\x00\x00"))
	f.Add([]byte("\xa9\x03z\x02tsz\x03cid[\x01\x00\x00\x00r\x00\x00\x00\x00"))
	// Version 2, as ModelDataCollector sends a few cells.
	f.Add([]byte("(\x03\x00\x00\x00u\x02\x00\x00\x00tsu\x03\x00\x00\x00cid[\x01\x00\x00\x00[\x02\x00\x00\x00g\x00\x00\x00\x00\x00\x00\xf8?u\x01\x00\x00\x00x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := appendDCRows([]byte("k"), data)
		want, werr := refAppendDCRows([]byte("k"), data)
		if (err == nil) != (werr == nil) || string(got) != string(want) {
			t.Fatalf("streaming: %q, %v\ntree: %q, %v", got, err, want, werr)
		}
		// A decoder reused after any record writes the next one right.
		var d pyDecoder
		_, _ = d.appendRows(nil, data)
		good := []byte(")\x03z\x02tsz\x03cid[\x01\x00\x00\x00[\x02\x00\x00\x00i\x07\x00\x00\x00z\x01x")
		if out, err := d.appendRows(nil, good); err != nil || string(out) != "ts,cid,7,x\n" {
			t.Fatalf("after %q: %q, %v", data, out, err)
		}
	})
}

// FuzzPyFloat: the positional fast path of appendPyFloat writes what the
// general one (from digits and exponent) writes.
func FuzzPyFloat(f *testing.F) {
	for _, v := range []float64{1, 1e-4, 1e16, 9999999999999998, 0.30000000000000004, 123.456, -7.25e10} {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		if got, want := string(appendPyFloat(nil, v)), string(appendPyFloatDigits(nil, v)); got != want {
			t.Fatalf("%v (%#x): %q, want %q", v, bits, got, want)
		}
		// Values spread over the fast path's range.
		v = math.Ldexp(float64(bits>>11), -int(bits%120)) * (1 - 2*float64(bits&1))
		if got, want := string(appendPyFloat(nil, v)), string(appendPyFloatDigits(nil, v)); got != want {
			t.Fatalf("%v: %q, want %q", v, got, want)
		}
		// Decimals of a few digits, and their neighbours.
		v = float64(int64(bits>>8)%(1<<40)) / math.Pow10(int(bits%9)) * (1 - 2*float64(bits>>7&1))
		for _, w := range []float64{v, math.Nextafter(v, math.Inf(1)), math.Nextafter(v, math.Inf(-1))} {
			if got, want := string(appendPyFloat(nil, w)), string(appendPyFloatDigits(nil, w)); got != want {
				t.Fatalf("%v: %q, want %q", w, got, want)
			}
		}
	})
}

// The short-decimal path: every decimal of up to 6 digits after the point
// in a spread of magnitudes, and its neighbours, against strconv.
func TestPyFloatShortDecimals(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(v float64) {
		t.Helper()
		if got, want := string(appendPyFloat(nil, v)), string(appendPyFloatDigits(nil, v)); got != want {
			t.Fatalf("%v (%#x): %q, want %q", v, math.Float64bits(v), got, want)
		}
	}
	for range 300000 {
		k := rng.IntN(8)
		m := rng.Int64N(int64(math.Pow10(rng.IntN(16))) + 1)
		v := float64(m) / math.Pow10(k)
		if rng.IntN(2) == 0 {
			v = -v
		}
		check(v)
		check(math.Nextafter(v, math.Inf(1)))
		check(math.Nextafter(v, math.Inf(-1)))
	}
	for _, v := range []float64{1e-4, 0.0001000000000001, 1 << 30, 1<<30 - 0.5, 1<<30 - 1e-6, 1073741823.999999, 0.1, 0.3, 2.675, 1e-6, 123456.789012} {
		check(v)
		check(-v)
	}
}

// csvQuoted tells what a byte at a time tells.
func TestCSVQuoted(t *testing.T) {
	quoted := func(s []byte) bool {
		for _, c := range s {
			if c == ',' || c == '"' || c == '\n' {
				return true
			}
		}
		return false
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 20 {
		for pos := range n {
			for c := range 256 {
				b := bytes.Repeat([]byte{'a' + byte(n)}, n)
				b[pos] = byte(c)
				if got, want := csvQuoted(b), quoted(b); got != want {
					t.Fatalf("%q: %v, want %v", b, got, want)
				}
			}
		}
	}
	for range 100000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if got, want := csvQuoted(b), quoted(b); got != want {
			t.Fatalf("%q: %v, want %v", b, got, want)
		}
	}
}
