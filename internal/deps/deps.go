//go:build tools

// Package deps pins modules the project is about to use, so that concurrent
// work in several packages does not race on go.mod. It builds nothing.
package deps

import (
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/opencontainers/go-digest"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.etcd.io/bbolt"
	_ "go.yaml.in/yaml/v3"
	_ "k8s.io/utils/clock"
	_ "k8s.io/utils/clock/testing"
)
