package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aksml/aksml/internal/jsontype"
)

// record returns a decoder that keeps its problems in *got.
func record(got *[]Problem, quote bool) *Decoder {
	return &Decoder{QuoteKeys: quote, Report: func(p Problem) error {
		*got = append(*got, p)
		return errors.New(render(p))
	}}
}

// render words p with its path and, where it has one, the value.
func render(p Problem) string {
	switch p.What {
	case WrongType:
		return fmt.Sprintf("%s: expected %s, got %s %s", p.Path, p.Want, p.Got(), p.Value())
	case Malformed:
		return fmt.Sprintf("%s: %s %s does not decode: %v", p.Path, p.Got(), p.Value(), p.Err)
	case UnknownField:
		return fmt.Sprintf("%s: unknown field (suggest %q)", p.Path, p.Suggest)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Msg)
}

func TestProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		doc   string
		quote bool
		read  func(o *Object)
		want  []string
	}{
		{"top level not an object", `[1, 2]`, false, nil, []string{`: expected an object, got an array [1, 2]`}},
		{"top level broken object", `{"a":`, false, nil, []string{`: an object {"a": does not decode: unexpected end of JSON input`}},
		{"null and absent read as absent", `{"a": null}`, false, func(o *Object) {
			if _, ok := o.String("a"); ok {
				o.Fail("a", "null read as present")
			}
			if _, ok := o.Bool("b"); ok {
				o.Fail("b", "absent read as present")
			}
			if o.Object("a") != nil {
				o.Fail("a", "null object read as present")
			}
		}, nil},
		{"wrong types name path and value", `{"s": 1, "b": "yes", "o": [true], "l": {}, "m": "x"}`, false, func(o *Object) {
			o.String("s")
			o.Bool("b")
			o.Object("o")
			o.Strings("l")
			o.StringMap("m")
		}, []string{
			`s: expected a string, got a number 1`,
			`b: expected true or false, got a string "yes"`,
			`o: expected an object, got an array [true]`,
			`l: expected an array of strings, got an object {}`,
			`m: expected an object of strings, got a string "x"`,
		}},
		{"items: null is empty, others named by index and key", `{"l": ["a", null, 2], "m": {"z": false, "y": null, "x": "1"}}`, false, func(o *Object) {
			if l, _ := o.Strings("l"); !slices.Equal(l, []string{"a", ""}) {
				o.Fail("l", "got %q", l)
			}
			if m, _ := o.StringMap("m"); len(m) != 2 || m["x"] != "1" || m["y"] != "" {
				o.Fail("m", "got %q", m)
			}
		}, []string{`l[2]: expected a string, got a number 2`, `m.z: expected a string, got a boolean false`}},
		{"unknown fields sorted, with a case-insensitive suggestion", `{"b": 1, "A": 2, "name": 3, "Name": 4, "c d": 5}`, false, func(o *Object) {
			o.Known("a", "name")
		}, []string{`A: unknown field (suggest "a")`, `Name: unknown field (suggest "name")`, `b: unknown field (suggest "")`, `c d: unknown field (suggest "")`}},
		{"nested paths, quoted keys", `{"o": {"a b": {"x": 1}, "ok": {"y": 2}}}`, true, func(o *Object) {
			in := o.Object("o")
			in.Object("a b").Done()
			in.Object("ok").Done()
			in.Done()
		}, []string{`o["a b"].x: unknown field (suggest "")`, `o.ok.y: unknown field (suggest "")`}},
		{"Done twice reports once", `{"x": 1}`, false, func(o *Object) { o.Done() }, []string{`x: unknown field (suggest "")`}},
		{"long values cut", `{"s": [1111111111, 2222222222, 3333333333, 4444444444]}`, false, func(o *Object) { o.String("s") },
			[]string{`s: expected a string, got an array [1111111111, 2222222222, 3333333333, ...`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []Problem
			d := record(&got, tt.quote)
			if o := d.Object("", json.RawMessage(tt.doc)); o != nil {
				if tt.read != nil {
					tt.read(o)
				}
				o.Done()
			}
			var msgs []string
			for _, e := range d.Errs() {
				msgs = append(msgs, e.Error())
			}
			if !slices.Equal(msgs, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(tt.want, "\n"))
			}
			if (d.Err() == nil) != (len(tt.want) == 0) {
				t.Errorf("Err() = %v with %d problems", d.Err(), len(tt.want))
			}
		})
	}
}

// FuzzDecode reads arbitrary documents with every accessor (a field's first
// letter picks it: s String, b Bool, l Strings, m StringMap, o Object, k
// Known; any other field is unknown). Nothing panics, and every problem
// names a field that is in the document, with the value written there:
// a wrong type is reported once for each value of the wrong type, an
// unknown field once for each field nobody read, and nothing else.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `[]`, `"x"`, `{`, ``, `{"s": "x", "b": true, "l": ["a"], "m": {"a": "b"}, "o": {"s": 1}}`,
		`{"s": 1, "b": 2, "l": [1, null], "m": {"z": [], "": null}, "o": [], "x": 1, "S": 2}`,
		`{"o": {"o": {"o": {"x y": 1, "k": 2, "K": 3}}}}`, `{"s": "\u00e9\ud800", "s": 2}`, `{"a.b": 1, "[0]": 2}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, quote bool) {
		var got []Problem
		d := record(&got, quote)
		// objects maps the path of each object read to its fields; paths
		// counts the paths of every value read, which two values can share
		// when keys hold dots or brackets.
		objects := map[string]map[string]json.RawMessage{}
		paths := map[string]int{}
		var read func(o *Object, fields map[string]json.RawMessage)
		read = func(o *Object, fields map[string]json.RawMessage) {
			objects[o.path] = fields
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range fields {
					if !yield(k) {
						return
					}
				}
			}) {
				before := len(got)
				raw := fields[k]
				paths[o.Path(k)]++
				null := jsontype.IsNull(raw)
				var want int // problems this read must add
				switch k[:min(1, len(k))] {
				case "s":
					if _, ok := o.String(k); !ok && !null {
						want = 1
					}
				case "b":
					if _, ok := o.Bool(k); !ok && !null {
						want = 1
					}
				case "l":
					l, ok := o.Strings(k)
					switch {
					case !ok && !null:
						want = 1
					case ok:
						var items []json.RawMessage
						json.Unmarshal(raw, &items)
						want = len(items) - len(l)
					}
				case "m":
					m, ok := o.StringMap(k)
					switch {
					case !ok && !null:
						want = 1
					case ok:
						var items map[string]json.RawMessage
						json.Unmarshal(raw, &items)
						want = len(items) - len(m)
					}
				case "o":
					in := o.Object(k)
					switch {
					case in != nil:
						before = len(got)
						read(in, in.fields)
						want = -1 // counted inside
					case !null:
						want = 1
					}
				case "k":
					o.Known(k)
				}
				if want >= 0 && len(got)-before != want {
					t.Fatalf("reading %s = %s added %d problems, want %d: %v", o.Path(k), raw, len(got)-before, want, got[before:])
				}
			}
			o.Done()
		}
		if o := d.Object("", data); o != nil {
			read(o, o.fields)
		}
		if len(got) != len(d.Errs()) {
			t.Fatalf("%d problems reported, %d errors kept", len(got), len(d.Errs()))
		}
		for _, n := range paths {
			if n > 1 {
				return // a path names two values: the checks below cannot tell them apart
			}
		}
		unknown := map[string]int{}
		for i, p := range got {
			if msg := d.Errs()[i].Error(); !strings.HasPrefix(msg, p.Path+":") {
				t.Fatalf("error %q does not name the path %q", msg, p.Path)
			}
			if p.Path == "" && p.What != UnknownField { // the document itself (an unknown field "" has path "" too)
				if len(got) != 1 || string(p.Raw) != string(data) {
					t.Fatalf("problem of the whole document: %+v among %d", p, len(got))
				}
				continue
			}
			fields, ok := objects[p.Parent]
			if !ok {
				// An item of an array of strings or a member of an object
				// of strings: its holder is a field of a read object.
				if p.What != WrongType || p.Want != "a string" || !strings.HasPrefix(p.Path, p.Parent) {
					t.Fatalf("problem under %q, which is no object read: %+v", p.Parent, p)
				}
				continue
			}
			if p.Path != d.Join(p.Parent, p.Key) {
				t.Fatalf("path %q is not %q joined with %q", p.Path, p.Parent, p.Key)
			}
			raw, ok := fields[p.Key]
			if !ok {
				t.Fatalf("problem names field %q, which %q does not have: %+v", p.Key, p.Parent, p)
			}
			switch p.What {
			case WrongType:
				if string(p.Raw) != string(raw) || p.Got() == strings.TrimSuffix(p.Want, " of strings") {
					t.Fatalf("wrong type %s for value %s: %+v", p.Got(), raw, p)
				}
				if msg := d.Errs()[i].Error(); !strings.Contains(msg, p.Value()) {
					t.Fatalf("error %q does not quote the value %q", msg, p.Value())
				}
			case UnknownField:
				if strings.ContainsAny(p.Key[:min(1, len(p.Key))], "sblmok") {
					t.Fatalf("field %s was read but reported unknown", p.Path)
				}
				if unknown[p.Path]++; unknown[p.Path] > 1 {
					t.Fatalf("unknown field %s reported twice", p.Path)
				}
				if p.Suggest != "" && !strings.EqualFold(p.Suggest, d.Join(p.Parent, strings.ToLower(p.Key))) &&
					!strings.EqualFold(p.Suggest, p.Path) {
					t.Fatalf("suggestion %q for %q differs by more than case", p.Suggest, p.Path)
				}
			default:
				t.Fatalf("unexpected problem %+v", p)
			}
		}
		// Every field nobody read is reported.
		for path, fields := range objects {
			for k := range fields {
				if !strings.ContainsAny(k[:min(1, len(k))], "sblmok") && unknown[d.Join(path, k)] == 0 {
					t.Fatalf("unknown field %s not reported", d.Join(path, k))
				}
			}
		}
	})
}
