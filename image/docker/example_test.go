package docker_test

import (
	"fmt"

	"github.com/aksml/aksml/image/docker"
)

// StoreFor turns the configuration string a CLI flag or a config file holds
// into an image store for image.Cache; it needs no engine to parse.
func ExampleStoreFor() {
	for _, loc := range []string{"", "engine:team/env", "registry:myacr.azurecr.io/aksml/env", "s3:bucket"} {
		s, err := docker.StoreFor(nil, loc)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(s)
	}
	// Output:
	// engine image store aksml/env
	// engine image store team/env
	// registry myacr.azurecr.io/aksml/env
	// error: image store "s3:bucket": want "engine:REPOSITORY" or "registry:HOST/REPOSITORY"
}
