package docker

import (
	"errors"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
)

func TestStoreFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want image.Store
	}{
		{"", &EngineStore{}},
		{"engine:team/env", &EngineStore{Repository: "team/env"}},
		{"registry:myacr.azurecr.io/aksml/env", &RegistryStore{Repository: "myacr.azurecr.io/aksml/env"}},
		{"registry:127.0.0.1:5000/env", &RegistryStore{Repository: "127.0.0.1:5000/env"}},
	}
	for _, tt := range tests {
		got, err := StoreFor(nil, tt.in)
		if err != nil {
			t.Errorf("StoreFor(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want.String() {
			t.Errorf("StoreFor(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"s3:bucket", "engine:", "engine:Bad/Repo", "registry:env", "engine:x@sha256:00", "engine:scratch", "engine:team/env:v1"} {
		if _, err := StoreFor(nil, bad); !errors.Is(err, errcode.InvalidArgument) {
			t.Errorf("StoreFor(%q): error %v, want InvalidArgument", bad, err)
		}
	}
}
