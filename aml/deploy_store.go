package aml

import "context"

// Names returns the names of every record of kind, in name order. It is
// the listing compute targets, services and endpoints use to find their
// records (see compute.Store).
func (ws *Workspace) Names(ctx context.Context, kind string) ([]string, error) {
	recs, err := ws.List(ctx, kind)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(recs))
	for i, r := range recs {
		names[i] = r.Name
	}
	return names, nil
}
