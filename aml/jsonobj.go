package aml

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/jsontype"
	"github.com/aksml/aksml/internal/strictjson"
)

// jsonObj is one object of an inferenceconfig.json file being decoded
// strictly (package strictjson): exact field names, every problem
// collected, fields nobody asked for reported by done. Its methods store a
// field into its destination when the field is present and valid.
type jsonObj struct{ *strictjson.Object }

// jsonKind names the JSON type of raw for messages.
func jsonKind(raw json.RawMessage) string { return jsontype.Of(raw) }

// newJSONDecoder returns a decoder whose problems read
// "file: path: expected a string, got an array" ("top level" for the
// document itself).
func newJSONDecoder(file string) *strictjson.Decoder {
	return &strictjson.Decoder{Report: func(p strictjson.Problem) error {
		where := p.Path
		if where == "" {
			where = "top level"
		}
		var msg string
		switch p.What {
		case strictjson.WrongType:
			msg = fmt.Sprintf("expected %s, got %s", p.Want, p.Got())
		case strictjson.Malformed:
			msg = fmt.Sprintf("invalid object: %v", p.Err)
		case strictjson.UnknownField:
			msg = "unknown field"
		default:
			msg = p.Msg
		}
		return errcode.Errorf(errcode.InvalidArgument, "%s: %s: %s", file, where, msg)
	}}
}

// newJSONObj decodes raw, the value at path, as an object. It returns nil
// for null (the caller treats the section as absent) and records a problem
// for other non-objects.
func newJSONObj(d *strictjson.Decoder, path string, raw json.RawMessage) *jsonObj {
	return wrapObj(d.Object(path, raw))
}

func wrapObj(o *strictjson.Object) *jsonObj {
	if o == nil {
		return nil
	}
	return &jsonObj{o}
}

func (o *jsonObj) str(field string, dst *string) {
	if s, ok := o.String(field); ok {
		*dst = s
	}
}

// strOrNumber accepts a string or a number, keeping a number's literal text
// (cudaVersion 10.0 and "10.0" both give "10.0").
func (o *jsonObj) strOrNumber(field string, dst *string) {
	raw, ok := o.Take(field)
	if !ok {
		return
	}
	if jsonKind(raw) == "a number" {
		*dst = string(bytes.TrimSpace(raw))
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		o.WrongType(field, "a string or a number", raw)
	}
}

func (o *jsonObj) boolean(field string, dst *bool) {
	if v, ok := o.Bool(field); ok {
		*dst = v
	}
}

// count accepts a non-negative whole number given as a number or a string
// ("version": "1").
func (o *jsonObj) count(field string, dst *int) {
	raw, ok := o.Take(field)
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
		o.WrongType(field, "a whole number", raw)
		return
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		o.Fail(field, "%q is not a whole number of at least 0", s)
		return
	}
	*dst = n
}

func (o *jsonObj) strList(field string, dst *[]string) {
	if list, ok := o.Strings(field); ok {
		*dst = list
	}
}

func (o *jsonObj) strMap(field string, dst *map[string]string) {
	if m, ok := o.StringMap(field); ok && len(m) > 0 {
		*dst = m
	}
}

// obj returns the nested object field, or nil when absent, null or broken.
func (o *jsonObj) obj(field string) *jsonObj { return wrapObj(o.Object.Object(field)) }

// done reports every field that no accessor asked for, sorted.
func (o *jsonObj) done() {
	if o != nil {
		o.Done()
	}
}
