package jsontype

import (
	"bytes"
	"encoding/json"
)

// Of names the JSON type of raw, judged by its first byte after leading
// white space: "an object", "an array", "a string", "a boolean", "null",
// "a number" (anything else), or "nothing" when raw is empty or blank. It
// does not check that raw is valid JSON.
func Of(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// IsNull reports whether raw is the JSON literal null, with or without
// surrounding white space.
func IsNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
