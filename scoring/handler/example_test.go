package handler_test

import (
	"context"
	"fmt"

	"github.com/aksml/aksml/scoring/handler"
)

// upper is a Go-native model that answers its input in upper case.
type upper struct{ ready bool }

func (u *upper) Init(ctx context.Context, modelDir string) error { u.ready = true; return nil }
func (u *upper) Run(ctx context.Context, input []byte) ([]byte, error) {
	out := make([]byte, len(input))
	for i, b := range input {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		out[i] = b
	}
	return out, nil
}

func Example() {
	var newHandler handler.New = func() handler.Handler { return &upper{} }
	h := newHandler() // one instance per replica
	ctx := context.Background()
	if err := h.Init(ctx, "/var/azureml-app/azureml-models"); err != nil {
		fmt.Println(err)
		return
	}
	out, _ := h.Run(ctx, []byte(`"hello"`))
	fmt.Println(string(out))
	// Output: "HELLO"
}
