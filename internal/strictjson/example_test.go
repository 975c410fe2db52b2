package strictjson_test

import (
	"fmt"

	"github.com/aksml/aksml/internal/strictjson"
)

func Example() {
	d := &strictjson.Decoder{Report: func(p strictjson.Problem) error {
		switch p.What {
		case strictjson.WrongType:
			return fmt.Errorf("%s must be %s, not %s %s", p.Path, p.Want, p.Got(), p.Value())
		case strictjson.UnknownField:
			if p.Suggest != "" {
				return fmt.Errorf("unknown field %s (did you mean %s?)", p.Path, p.Suggest)
			}
			return fmt.Errorf("unknown field %s", p.Path)
		}
		return fmt.Errorf("%s: %s", p.Path, p.Msg)
	}}
	o := d.Object("", []byte(`{"name": 7, "tags": ["a", 1], "debug": null, "Port": 80, "limits": {"cpu": true}}`))
	name, _ := o.String("name")
	tags, _ := o.Strings("tags")
	debug, _ := o.Bool("debug") // null: the same as absent
	o.Known("port")
	if l := o.Object("limits"); l != nil {
		if cpu, ok := l.Bool("cpu"); ok && cpu {
			l.Fail("cpu", "must be false on this cluster")
		}
		l.Done()
	}
	o.Done()
	fmt.Printf("name %q, tags %q, debug %v\n", name, tags, debug)
	fmt.Println(d.Err())
	// Output:
	// name "", tags ["a"], debug false
	// name must be a string, not a number 7
	// tags[1] must be a string, not a number 1
	// limits.cpu: must be false on this cluster
	// unknown field Port (did you mean port?)
}
