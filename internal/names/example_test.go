package names_test

import (
	"fmt"

	"github.com/aksml/aksml/internal/names"
)

func ExampleRule_Check() {
	service := names.Rule{What: "service", Min: 3, Max: 32, Lowercase: true}
	fmt.Println(service.Check("my-service"))
	fmt.Println(service.Check("My_Service-"))
	// Output:
	// <nil>
	// Invalid service name "My_Service-": it must start with a lowercase letter; it must end with a lowercase letter or digit; it may contain only lowercase letters, digits and dashes (found 'M').
}
