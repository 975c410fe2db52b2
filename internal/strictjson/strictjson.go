package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aksml/aksml/internal/jsontype"
)

// What says which kind of Problem it is.
type What int

const (
	// WrongType: the value at Path is not of the JSON type Want names.
	WrongType What = iota + 1
	// Malformed: the value has the JSON type Want names but does not
	// decode; Err says why.
	Malformed
	// UnknownField: Key is a field of the object at Parent that nobody
	// read; Suggest names a known field spelled the same but for case.
	UnknownField
	// Rule: a caller's own rule, worded in Msg.
	Rule
)

// Problem is one thing wrong with a document.
type Problem struct {
	What What
	// Path is the JSON path of the value ("environment.python",
	// "dependencies[0]"); "" is the document itself. Parent is the path of
	// the object or array holding it, and Key its name when it is a field
	// of an object.
	Path, Parent, Key string
	// Want is what the rule asks for, worded to follow "expected" or
	// "must be": "an object", "a string", "true or false", "an array of
	// strings", "an object of strings".
	Want string
	// Raw is the value as written (WrongType, Malformed).
	Raw json.RawMessage
	// Err is why a Malformed value does not decode.
	Err error
	// Suggest is, for an UnknownField, the path of a known field of the
	// same object whose name differs only in case.
	Suggest string
	// Msg words a Rule problem.
	Msg string
}

// Got names the JSON type of Raw: "an array", "a number", ….
func (p Problem) Got() string { return jsontype.Of(p.Raw) }

// Value is Raw as Show quotes it.
func (p Problem) Value() string { return Show(p.Raw) }

// Show returns raw as written, without surrounding white space and cut to
// 40 bytes (37 and "..."), for quoting in a message.
func Show(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// A Decoder collects the problems of one document.
type Decoder struct {
	// Report turns a problem into the error the user sees. It must not be
	// nil.
	Report func(Problem) error
	// QuoteKeys writes a key that is not an identifier
	// ([A-Za-z_][A-Za-z0-9_]*) as ["key"] in paths instead of .key.
	QuoteKeys bool

	errs []error
}

// Problem records p, worded by Report.
func (d *Decoder) Problem(p Problem) { d.errs = append(d.errs, d.Report(p)) }

// Fail records a Rule problem of the value at path.
func (d *Decoder) Fail(path, format string, args ...any) {
	d.Problem(Problem{What: Rule, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// WrongType records that raw, the value at path, is not what want names.
func (d *Decoder) WrongType(path, want string, raw json.RawMessage) {
	d.Problem(Problem{What: WrongType, Path: path, Want: want, Raw: raw})
}

// Errs returns the problems recorded so far, in order.
func (d *Decoder) Errs() []error { return d.errs }

// Err joins the problems recorded so far; nil when there are none.
func (d *Decoder) Err() error { return errors.Join(d.errs...) }

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Join returns the path of field key of the object at parent.
func (d *Decoder) Join(parent, key string) string {
	if d.QuoteKeys && !identifier.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// Object decodes raw, the value at path, as an object. It returns nil for
// null, without a problem (the caller treats the value as absent), and
// nil with a WrongType or Malformed problem for anything else that is not
// an object.
func (d *Decoder) Object(path string, raw json.RawMessage) *Object {
	return d.object(path, "", "", raw)
}

func (d *Decoder) object(path, parent, key string, raw json.RawMessage) *Object {
	if jsontype.IsNull(raw) {
		return nil
	}
	p := Problem{What: WrongType, Path: path, Parent: parent, Key: key, Want: "an object", Raw: raw}
	if jsontype.Of(raw) != "an object" {
		d.Problem(p)
		return nil
	}
	o := &Object{d: d, path: path, known: map[string]bool{}}
	if err := json.Unmarshal(raw, &o.fields); err != nil {
		p.What, p.Err = Malformed, err
		d.Problem(p)
		return nil
	}
	return o
}

// Object is one JSON object being decoded. Each field read, or named by
// Known, is known; Done reports the others.
type Object struct {
	d      *Decoder
	path   string
	fields map[string]json.RawMessage
	known  map[string]bool
	order  []string // the known keys, in the order first read or named
}

// Decoder returns the decoder o records its problems in.
func (o *Object) Decoder() *Decoder { return o.d }

// Path returns the path of field key of o.
func (o *Object) Path(key string) string { return o.d.Join(o.path, key) }

// Has reports whether o has field key, even as null. It does not make key
// known.
func (o *Object) Has(key string) bool {
	_, ok := o.fields[key]
	return ok
}

// Known makes keys known without reading them.
func (o *Object) Known(keys ...string) {
	for _, k := range keys {
		if !o.known[k] {
			o.known[k] = true
			o.order = append(o.order, k)
		}
	}
}

// Take returns the value of field key and makes key known. ok is false
// when the field is absent or null.
func (o *Object) Take(key string) (raw json.RawMessage, ok bool) {
	o.Known(key)
	raw, ok = o.fields[key]
	if !ok || jsontype.IsNull(raw) {
		return nil, false
	}
	return raw, true
}

// Fail records a Rule problem of field key.
func (o *Object) Fail(key, format string, args ...any) {
	o.d.Problem(Problem{What: Rule, Path: o.Path(key), Parent: o.path, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// WrongType records that field key, raw, is not what want names.
func (o *Object) WrongType(key, want string, raw json.RawMessage) {
	o.d.Problem(Problem{What: WrongType, Path: o.Path(key), Parent: o.path, Key: key, Want: want, Raw: raw})
}

// String returns the string field key. ok is false when it is absent,
// null, or not a string (a problem).
func (o *Object) String(key string) (s string, ok bool) {
	raw, ok := o.Take(key)
	if !ok {
		return "", false
	}
	if jsontype.Of(raw) != "a string" || json.Unmarshal(raw, &s) != nil {
		o.WrongType(key, "a string", raw)
		return "", false
	}
	return s, true
}

// Bool returns the boolean field key. ok is false when it is absent, null,
// or not true or false (a problem).
func (o *Object) Bool(key string) (v, ok bool) {
	raw, ok := o.Take(key)
	if !ok {
		return false, false
	}
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	o.WrongType(key, "true or false", raw)
	return false, false
}

// Object returns the object field key, or nil when it is absent, null or
// not an object (a problem).
func (o *Object) Object(key string) *Object {
	raw, ok := o.Take(key)
	if !ok {
		return nil
	}
	return o.d.object(o.Path(key), o.path, key, raw)
}

// Strings returns the array of strings field key. ok is false when it is
// absent, null or not an array (a problem); a null item is the empty
// string, and any other item that is not a string is a problem of its own
// (path key[i]) and is left out.
func (o *Object) Strings(key string) (list []string, ok bool) {
	raw, ok := o.Take(key)
	if !ok {
		return nil, false
	}
	var items []json.RawMessage
	if jsontype.Of(raw) != "an array" || json.Unmarshal(raw, &items) != nil {
		o.WrongType(key, "an array of strings", raw)
		return nil, false
	}
	path := o.Path(key)
	for i, it := range items {
		s, ok := item(it)
		if !ok {
			o.d.Problem(Problem{What: WrongType, Path: fmt.Sprintf("%s[%d]", path, i), Parent: path, Want: "a string", Raw: it})
			continue
		}
		list = append(list, s)
	}
	return list, true
}

// StringMap returns the object of strings field key. ok is false when it
// is absent, null or not an object (a problem); a null member is the empty
// string, and any other member that is not a string is a problem of its own
// (path key.member, in sorted order) and is left out.
func (o *Object) StringMap(key string) (m map[string]string, ok bool) {
	raw, ok := o.Take(key)
	if !ok {
		return nil, false
	}
	var items map[string]json.RawMessage
	if jsontype.Of(raw) != "an object" || json.Unmarshal(raw, &items) != nil {
		o.WrongType(key, "an object of strings", raw)
		return nil, false
	}
	path := o.Path(key)
	m = make(map[string]string, len(items))
	for _, k := range slices.Sorted(maps.Keys(items)) {
		s, ok := item(items[k])
		if !ok {
			o.d.Problem(Problem{What: WrongType, Path: o.d.Join(path, k), Parent: path, Key: k, Want: "a string", Raw: items[k]})
			continue
		}
		m[k] = s
	}
	return m, true
}

// item decodes an item of an array or object of strings: a string, or
// null for the empty string.
func item(raw json.RawMessage) (string, bool) {
	var s string
	if jsontype.IsNull(raw) {
		return "", true
	}
	if jsontype.Of(raw) != "a string" || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Done reports, in sorted order, each field of o that is not known (read
// or named by Known), and then makes it known, so that a second Done
// reports only fields neither call covered. A nil Object has nothing to
// report.
func (o *Object) Done() {
	if o == nil {
		return
	}
	var unknown []string
	for k := range o.fields {
		if !o.known[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		p := Problem{What: UnknownField, Path: o.Path(k), Parent: o.path, Key: k}
		if i := slices.IndexFunc(o.order, func(s string) bool { return strings.EqualFold(s, k) }); i >= 0 {
			p.Suggest = o.Path(o.order[i])
		}
		o.d.Problem(p)
	}
	o.Known(unknown...)
}
