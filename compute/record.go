package compute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/aksml/aksml/errcode"
)

// LoadRecord reads the JSON record kind/name from store into a T. A missing
// record is NotFound, naming what it is ("service", "endpoint", …); one that
// does not decode is Internal.
func LoadRecord[T any](ctx context.Context, store Store, kind, what, name string) (T, error) {
	var rec T
	b, err := store.Get(ctx, kind, name)
	if err != nil {
		if errors.Is(err, errcode.NotFound) {
			return rec, errcode.Errorf(errcode.NotFound, "%s %q not found in the workspace", what, name)
		}
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, errcode.Wrap(errcode.Internal, fmt.Errorf("%s %q: corrupt record: %w", what, name, err))
	}
	return rec, nil
}

// ValuesLister is a Store that also reads every record of a kind at once:
// the names in order and their values. The workspace (aml.Workspace) does
// it in one read transaction, where a Get per record costs one each.
type ValuesLister interface {
	Values(ctx context.Context, kind string) (names []string, values [][]byte, err error)
}

// ListRecords reads every JSON record of kind from store, in name order,
// in one pass when the store is a ValuesLister.
func ListRecords[T any](ctx context.Context, store Store, kind, what string) ([]T, error) {
	if vl, ok := store.(ValuesLister); ok {
		names, values, err := vl.Values(ctx, kind)
		if err != nil {
			return nil, err
		}
		out := make([]T, len(names))
		for i, b := range values {
			if err := json.Unmarshal(b, &out[i]); err != nil {
				return nil, errcode.Wrap(errcode.Internal, fmt.Errorf("%s %q: corrupt record: %w", what, names[i], err))
			}
		}
		return out, nil
	}
	names, err := store.Names(ctx, kind)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]T, 0, len(names))
	for _, n := range names {
		rec, err := LoadRecord[T](ctx, store, kind, what, n)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}
