package aml

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/jsontype"
)

// jsonObj decodes one JSON object field by field with exact (case-sensitive)
// field names, collecting every problem instead of stopping at the first:
// a wrong type, or a field nobody asked for (reported by done as unknown).
// encoding/json alone matches names case-insensitively and stops at the
// first error.
type jsonObj struct {
	file   string // "inferenceconfig.json", for messages
	path   string // "environment.python", "" at the top
	fields map[string]json.RawMessage
	used   map[string]bool
	errs   *[]error
}

// jsonKind names the JSON type of raw for messages.
func jsonKind(raw json.RawMessage) string { return jsontype.Of(raw) }

func (o *jsonObj) fail(field, format string, args ...any) {
	*o.errs = append(*o.errs, errcode.Errorf(errcode.InvalidArgument, "%s: %s: %s", o.file, o.join(field), fmt.Sprintf(format, args...)))
}

func (o *jsonObj) join(field string) string {
	if o.path == "" {
		if field == "" {
			return "top level"
		}
		return field
	}
	if field == "" {
		return o.path
	}
	return o.path + "." + field
}

// newJSONObj decodes raw as an object. It returns nil for null (the caller
// treats the section as absent) and records an error for other non-objects.
func newJSONObj(file, path string, raw json.RawMessage, errs *[]error) *jsonObj {
	o := &jsonObj{file: file, path: path, errs: errs, used: map[string]bool{}}
	if jsontype.IsNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, &o.fields); err != nil || o.fields == nil {
		if jsonKind(raw) == "an object" {
			o.fail("", "invalid object: %v", err)
		} else {
			o.fail("", "expected an object, got %s", jsonKind(raw))
		}
		return nil
	}
	return o
}

// take returns the raw value of field, marking it known. ok is false when
// the field is absent or null.
func (o *jsonObj) take(field string) (json.RawMessage, bool) {
	o.used[field] = true
	raw, ok := o.fields[field]
	if !ok || jsontype.IsNull(raw) {
		return nil, false
	}
	return raw, true
}

func (o *jsonObj) str(field string, dst *string) {
	raw, ok := o.take(field)
	if !ok {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		o.fail(field, "expected a string, got %s", jsonKind(raw))
	}
}

// strOrNumber accepts a string or a number, keeping a number's literal text
// (cudaVersion 10.0 and "10.0" both give "10.0").
func (o *jsonObj) strOrNumber(field string, dst *string) {
	raw, ok := o.take(field)
	if !ok {
		return
	}
	if jsonKind(raw) == "a number" {
		*dst = string(bytes.TrimSpace(raw))
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		o.fail(field, "expected a string or a number, got %s", jsonKind(raw))
	}
}

func (o *jsonObj) boolean(field string, dst *bool) {
	raw, ok := o.take(field)
	if !ok {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		o.fail(field, "expected true or false, got %s", jsonKind(raw))
	}
}

// count accepts a non-negative whole number given as a number or a string
// ("version": "1").
func (o *jsonObj) count(field string, dst *int) {
	raw, ok := o.take(field)
	if !ok {
		return
	}
	var s string
	switch jsonKind(raw) {
	case "a number":
		s = string(bytes.TrimSpace(raw))
	case "a string":
		json.Unmarshal(raw, &s)
	default:
		o.fail(field, "expected a whole number, got %s", jsonKind(raw))
		return
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		o.fail(field, "%q is not a whole number of at least 0", s)
		return
	}
	*dst = n
}

func (o *jsonObj) strList(field string, dst *[]string) {
	raw, ok := o.take(field)
	if !ok {
		return
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		o.fail(field, "expected an array of strings, got %s", jsonKind(raw))
		return
	}
	var out []string
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			o.fail(fmt.Sprintf("%s[%d]", field, i), "expected a string, got %s", jsonKind(it))
			continue
		}
		out = append(out, s)
	}
	*dst = out
}

func (o *jsonObj) strMap(field string, dst *map[string]string) {
	raw, ok := o.take(field)
	if !ok {
		return
	}
	var items map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		o.fail(field, "expected an object of strings, got %s", jsonKind(raw))
		return
	}
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := map[string]string{}
	for _, k := range keys {
		var s string
		if err := json.Unmarshal(items[k], &s); err != nil {
			o.fail(field+"."+k, "expected a string, got %s", jsonKind(items[k]))
			continue
		}
		out[k] = s
	}
	if len(out) > 0 {
		*dst = out
	}
}

// obj returns the nested object field, or nil when absent, null or broken.
func (o *jsonObj) obj(field string) *jsonObj {
	raw, ok := o.take(field)
	if !ok {
		return nil
	}
	return newJSONObj(o.file, o.join(field), raw, o.errs)
}

// done reports every field that no accessor asked for, sorted.
func (o *jsonObj) done() {
	if o == nil {
		return
	}
	var unknown []string
	for k := range o.fields {
		if !o.used[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		o.fail(k, "unknown field")
	}
}
