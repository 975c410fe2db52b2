package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
)

// localBackend is the Backend of compute targets on the workspace's
// local cluster.
const localBackend = "local"

func (a *app) localProvider(ctx context.Context) (driver.Provider, error) {
	return nil, errcode.New(errcode.Unimplemented, "the local cluster is not available in this build")
}

func (a *app) attachLocal(ctx context.Context, name string) (*compute.Target, error) {
	return nil, errcode.New(errcode.Unimplemented, "the local cluster is not available in this build")
}

func (a *app) localState(ctx context.Context) string { return "NotRunning" }

func (a *app) localCmd() *cobra.Command {
	return group("local", "The workspace's local AKS")
}
