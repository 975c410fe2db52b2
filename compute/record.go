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

// ListRecords reads every JSON record of kind from store, in name order.
func ListRecords[T any](ctx context.Context, store Store, kind, what string) ([]T, error) {
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
