package compute

import "sync"

// Local holds what a workspace keeps for this process only, by kind and
// name: values that have no stored form, such as the Go handlers of the
// services and endpoints its targets run (a Go func cannot be written to
// disk). Each workspace has its own, so two workspaces in one process that
// use the same target and service names never see each other's values.
// The zero value is empty and ready to use; it is safe for concurrent use.
type Local struct {
	m sync.Map // localKey → any
}

type localKey struct{ kind, name string }

// Load returns the value kept for kind/name.
func (l *Local) Load(kind, name string) (any, bool) {
	return l.m.Load(localKey{kind, name})
}

// Store keeps v for kind/name, replacing what was there.
func (l *Local) Store(kind, name string, v any) {
	l.m.Store(localKey{kind, name}, v)
}

// Delete forgets kind/name.
func (l *Local) Delete(kind, name string) {
	l.m.Delete(localKey{kind, name})
}
