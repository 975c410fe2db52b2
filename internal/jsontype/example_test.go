package jsontype_test

import (
	"encoding/json"
	"fmt"

	"github.com/aksml/aksml/internal/jsontype"
)

func ExampleOf() {
	for _, raw := range []string{`{"a":1}`, ` [1]`, `"x"`, `true`, `null`, `-1.5`, ` `} {
		fmt.Printf("%-9q %s\n", raw, jsontype.Of(json.RawMessage(raw)))
	}
	fmt.Println(jsontype.IsNull(json.RawMessage(" null\n")), jsontype.IsNull(json.RawMessage(`"null"`)))
	// Output:
	// "{\"a\":1}" an object
	// " [1]"    an array
	// "\"x\""   a string
	// "true"    a boolean
	// "null"    null
	// "-1.5"    a number
	// " "       nothing
	// true false
}
