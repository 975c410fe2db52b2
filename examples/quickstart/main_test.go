package main

import (
	"testing"

	"github.com/aksml/aksml/examples/internal/iristest"
	"github.com/aksml/aksml/simulator"
)

// TestQuickstart runs the README's main job and checks what it prints.
func TestQuickstart(t *testing.T) {
	sim := simulator.New(nil)
	defer sim.Close()
	iristest.Check(t, sim)
}
