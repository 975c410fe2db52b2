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

// Values returns the names and values of every record of kind, in name
// order, from one read transaction (compute.ValuesLister): listing services
// or endpoints reads the workspace once, not once per record.
func (ws *Workspace) Values(ctx context.Context, kind string) ([]string, [][]byte, error) {
	recs, err := ws.List(ctx, kind)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(recs))
	values := make([][]byte, len(recs))
	for i, r := range recs {
		names[i], values[i] = r.Name, r.Value
	}
	return names, values, nil
}
