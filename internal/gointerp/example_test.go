package gointerp_test

import (
	"context"
	"fmt"
	"os"

	"github.com/aksml/aksml/internal/gointerp"
)

// Two cells: the second sees the first's function and variable, and its
// last expression is its value.
func ExampleInterpreter_Eval() {
	it, err := gointerp.New(&gointerp.Options{Stdout: os.Stdout})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if _, err := it.Eval(ctx, "", "import \"fmt\"\nbase := 40\nfunc add(n int) int { return base + n }\nfmt.Println(\"defined\")"); err != nil {
		panic(err)
	}
	r, err := it.Eval(ctx, "", "total := 0\nfor i := range 3 { total += i }\nadd(total - 1)")
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Value)
	_, err = it.Eval(ctx, "", "undefinedName + 1")
	fmt.Println(err)
	// Output:
	// defined
	// 42
	// cell[3]:1:1: undefined: undefinedName
}
