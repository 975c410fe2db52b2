package main

import (
	"testing"

	"github.com/aksml/aksml/examples/internal/iristest"
	"github.com/aksml/aksml/kube/local"
)

// TestIntegrationLocalCluster runs the quickstart's job on a local AKS and
// checks it prints what the quickstart prints, score.py running in a scoring-server
// process per pod, scored through the in-cluster front-end.
func TestIntegrationLocalCluster(t *testing.T) {
	iristest.Check(t, local.NewProvider(nil))
}
