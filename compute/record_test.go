package compute_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/errcode"
)

type rec struct {
	Name string
	N    int
}

// countingStore is a workspace that counts Get calls and, unless lister
// is set, hides the workspace's Values.
type countingStore struct {
	compute.Store
	gets int
}

func (s *countingStore) Get(ctx context.Context, kind, name string) ([]byte, error) {
	s.gets++
	return s.Store.Get(ctx, kind, name)
}

type listingStore struct {
	*countingStore
	ws *aml.Workspace
}

func (s listingStore) Values(ctx context.Context, kind string) ([]string, [][]byte, error) {
	return s.ws.Values(ctx, kind)
}

// ListRecords reads a store that lists values at once in one pass, with
// the same records in the same order as one Get per name, and names a
// corrupt record either way.
func TestListRecordsReadsAValuesListerOnce(t *testing.T) {
	ctx := context.Background()
	ws, err := aml.Open(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, i := range []int{3, 1, 2, 10} {
		if err := ws.Put(ctx, "thing", fmt.Sprintf("t%02d", i), []byte(fmt.Sprintf(`{"Name":"t%02d","N":%d}`, i, i))); err != nil {
			t.Fatal(err)
		}
	}
	var _ compute.ValuesLister = ws
	perName := &countingStore{Store: ws}
	slow, err := compute.ListRecords[rec](ctx, perName, "thing", "thing")
	if err != nil {
		t.Fatal(err)
	}
	if perName.gets != 4 {
		t.Errorf("per-name listing made %d Gets, want 4", perName.gets)
	}
	lister := listingStore{&countingStore{Store: ws}, ws}
	fast, err := compute.ListRecords[rec](ctx, lister, "thing", "thing")
	if err != nil {
		t.Fatal(err)
	}
	if lister.gets != 0 {
		t.Errorf("a ValuesLister was read with %d Gets, want none", lister.gets)
	}
	if fmt.Sprint(fast) != fmt.Sprint(slow) || fmt.Sprint(fast) != "[{t01 1} {t02 2} {t03 3} {t10 10}]" {
		t.Errorf("records %v (per name %v), want t01, t02, t03, t10 in order", fast, slow)
	}

	if err := ws.Put(ctx, "thing", "t05", []byte("{")); err != nil {
		t.Fatal(err)
	}
	for _, store := range []compute.Store{perName, lister} {
		_, err := compute.ListRecords[rec](ctx, store, "thing", "thing")
		if !errors.Is(err, errcode.Internal) || !strings.Contains(err.Error(), `thing "t05": corrupt record`) {
			t.Errorf("%T: corrupt record gave %v", store, err)
		}
	}
}
