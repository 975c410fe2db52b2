package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/aksml/aksml/errcode"
	"go.yaml.in/yaml/v3"
)

// maxCondaBytes bounds the conda file; real ones are a few hundred bytes.
const maxCondaBytes = 1 << 20

// canonicalConda parses a conda environment file and returns its meaning as
// plain JSON-able values: maps with string keys, the environment's name and
// prefix dropped (they name the environment, not its content), the
// dependencies sorted (their order does not change what conda installs) and
// the pip sub-list sorted. Channels keep their order: it is their priority.
func canonicalConda(data []byte) (map[string]any, error) {
	if len(data) > maxCondaBytes {
		return nil, errcode.Errorf(errcode.InvalidArgument, "condaDependencies is %d bytes, above the limit of %d", len(data), maxCondaBytes)
	}
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "condaDependencies is not valid YAML: %v", err)
	}
	plain, err := plainValue(raw, 0)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "condaDependencies: %v", err)
	}
	doc, ok := plain.(map[string]any)
	if !ok {
		return nil, errcode.Errorf(errcode.InvalidArgument, "condaDependencies must be a YAML mapping with channels and dependencies, got %s", kindOf(plain))
	}
	delete(doc, "name")
	delete(doc, "prefix")
	if ch, ok := doc["channels"]; ok {
		if _, isList := ch.([]any); !isList && ch != nil {
			return nil, errcode.Errorf(errcode.InvalidArgument, "condaDependencies channels must be a list, got %s", kindOf(ch))
		}
	}
	if deps, ok := doc["dependencies"]; ok && deps != nil {
		list, isList := deps.([]any)
		if !isList {
			return nil, errcode.Errorf(errcode.InvalidArgument, "condaDependencies dependencies must be a list, got %s", kindOf(deps))
		}
		for _, d := range list {
			if m, ok := d.(map[string]any); ok {
				if pip, ok := m["pip"].([]any); ok {
					sortValues(pip)
				}
			}
		}
		sortValues(list)
	}
	return doc, nil
}

// plainValue converts a decoded YAML value into JSON-encodable values with
// string map keys, rejecting what JSON cannot carry.
func plainValue(v any, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("nested more than 64 levels deep")
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			p, err := plainValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = p
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			p, err := plainValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = p
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			p, err := plainValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("value %v is not a finite number", x)
		}
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case nil, string, bool, int, int64, uint64:
		return x, nil
	default:
		// Other scalars (big integers and the like): keep their text.
		return fmt.Sprint(x), nil
	}
}

// sortValues sorts a list by the canonical JSON of its elements.
func sortValues(list []any) {
	keys := make([][]byte, len(list))
	for i, v := range list {
		keys[i], _ = json.Marshal(v)
	}
	idx := make([]int, len(list))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return bytes.Compare(keys[idx[a]], keys[idx[b]]) < 0 })
	sorted := make([]any, len(list))
	for i, j := range idx {
		sorted[i] = list[j]
	}
	copy(list, sorted)
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// condaFile renders the canonical conda environment as YAML for the build
// context, so that the image holds exactly what the digest covers.
func condaFile(conda any) ([]byte, error) {
	b, err := yaml.Marshal(conda)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "condaDependencies cannot be rendered: %v", err)
	}
	return b, nil
}
