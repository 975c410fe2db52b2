package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	jmespath "github.com/jmespath-community/go-jmespath"
	yaml "go.yaml.in/yaml/v3"

	"github.com/aksml/aksml/errcode"
)

// column is one column of a table view: its header and the key of the
// (JSON) object it shows; a dotted key reaches into nested objects.
type column struct {
	header, key string
}

// view is what a show or list command prints: the value (rendered as JSON
// first, so every format and --query see the same fields) and the columns
// of its table.
type view struct {
	value   any
	columns []column
}

// print renders v in the run's output format after applying --query.
func (a *app) print(v view) error {
	b, err := json.Marshal(v.value)
	if err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	var data any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	cols := v.columns
	if a.query != "" {
		data, err = jmespath.Search(a.query, numbersToFloat(data))
		if err != nil {
			return errcode.Errorf(errcode.InvalidArgument, "--query %q: %v", a.query, err)
		}
		cols = nil // the query chose the shape
	}
	return render(a.stdout, a.output, data, cols)
}

// numbersToFloat turns json.Number into float64 for JMESPath, which
// compares and sorts numbers as float64.
func numbersToFloat(v any) any {
	switch t := v.(type) {
	case json.Number:
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = numbersToFloat(x)
		}
	case []any:
		for i, x := range t {
			t[i] = numbersToFloat(x)
		}
	}
	return v
}

// render writes data (JSON values) as format.
func render(w io.Writer, format string, data any, cols []column) error {
	switch format {
	case "none":
		return nil
	case "yaml":
		b, err := yaml.Marshal(yamlable(data))
		if err != nil {
			return errcode.Wrap(errcode.Internal, err)
		}
		_, err = w.Write(b)
		return err
	case "table":
		return renderTable(w, data, cols, true)
	case "tsv":
		return renderTable(w, data, cols, false)
	default:
		b, err := json.MarshalIndent(data, "", "  ")
		if err != nil {
			return errcode.Wrap(errcode.Internal, err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
}

// yamlable turns json.Number into int64 or float64 so YAML prints numbers.
func yamlable(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = yamlable(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = yamlable(x)
		}
		return out
	}
	return v
}

// renderTable prints a list of objects (or one object) as rows: with
// headers and aligned columns for table, tab-separated values without
// headers for tsv, as az does. Without columns the object's keys, sorted,
// are the columns; a list of scalars is one column.
func renderTable(w io.Writer, data any, cols []column, headers bool) error {
	var rows []any
	switch t := data.(type) {
	case []any:
		rows = t
	case nil:
		return nil
	default:
		rows = []any{t}
	}
	if cols == nil {
		keys := map[string]bool{}
		for _, r := range rows {
			if m, ok := r.(map[string]any); ok {
				for k, v := range m {
					if isScalar(v) {
						keys[k] = true
					}
				}
			}
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range keys {
				if !yield(k) {
					return
				}
			}
		}) {
			cols = append(cols, column{header: headerOf(k), key: k})
		}
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	out := io.Writer(tw)
	if !headers {
		out = &buf
	}
	if headers && len(cols) > 0 {
		var h, u []string
		for _, c := range cols {
			h = append(h, c.header)
			u = append(u, strings.Repeat("-", len(c.header)))
		}
		fmt.Fprintln(out, strings.Join(h, "\t"))
		fmt.Fprintln(out, strings.Join(u, "\t"))
	}
	for _, r := range rows {
		if list, ok := r.([]any); ok {
			// A row of values, as a query such as [].[name, version]
			// makes.
			var vals []string
			for _, x := range list {
				vals = append(vals, cell(x))
			}
			fmt.Fprintln(out, strings.Join(vals, "\t"))
			continue
		}
		m, ok := r.(map[string]any)
		if !ok || len(cols) == 0 {
			fmt.Fprintln(out, cell(r))
			continue
		}
		var vals []string
		for _, c := range cols {
			vals = append(vals, cell(lookup(m, c.key)))
		}
		fmt.Fprintln(out, strings.Join(vals, "\t"))
	}
	if headers {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// headerOf turns a JSON key into a table header: scoringUri → ScoringUri.
func headerOf(key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		key = key[i+1:]
	}
	if key == "" {
		return key
	}
	return strings.ToUpper(key[:1]) + key[1:]
}

// lookup reads a dotted key from nested objects.
func lookup(m map[string]any, key string) any {
	var cur any = m
	for _, part := range strings.Split(key, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[part]
	}
	return cur
}

// cell formats one value for a table or tsv cell.
func cell(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	case []any:
		var parts []string
		for _, x := range t {
			parts = append(parts, cell(x))
		}
		return strings.Join(parts, ",")
	case map[string]any:
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range t {
				if !yield(k) {
					return
				}
			}
		})
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+cell(t[k]))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}
