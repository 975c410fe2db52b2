package aml

import "github.com/aksml/aksml/compute"

// Local is the workspace's table of values this process holds and cannot
// store: the Go handlers of the services and endpoints deployed through
// it (see compute.Local). Each Workspace has its own.
func (ws *Workspace) Local() *compute.Local { return &ws.local }

var _ compute.Store = (*Workspace)(nil)
