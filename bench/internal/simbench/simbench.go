// Package simbench sets up what the simulator benchmarks (bench/scale,
// bench/autoscale) share: a workspace in a temporary directory and an
// in-process simulator.
package simbench

import (
	"context"
	"os"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/simulator"
)

// Open returns a workspace in a new temporary directory (named after
// prefix) and a simulator with its default options, and a cleanup that
// closes both and removes the directory.
func Open(ctx context.Context, prefix string) (*aml.Workspace, *simulator.Simulator, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, nil, err
	}
	ws, err := aml.Open(ctx, dir, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	sim := simulator.New(nil)
	return ws, sim, func() {
		sim.Close()
		ws.Close()
		os.RemoveAll(dir)
	}, nil
}
