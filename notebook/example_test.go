package notebook_test

import (
	"fmt"
	"time"

	"github.com/aksml/aksml/notebook"
)

// A load run's summary, the text form of its display.
func ExampleLoadResult_Summary() {
	r := &notebook.LoadResult{
		Requests: 4, OK: 4,
		Latencies: []time.Duration{2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond, 9 * time.Millisecond},
		ByVersion: map[string]int{"blue": 3, "green": 1},
		Elapsed:   20 * time.Millisecond,
	}
	fmt.Println(r.Summary())
	// Output:
	// 4 requests, 4 OK in 20ms; latency p50 3ms p90 9ms p99 9ms; by version: blue=3 green=1
}

// Outside a kernel, Show prints the plain-text form.
func ExampleShow() {
	notebook.Show(notebook.Logs([]string{"init() done", "scored 3 rows"}))
	// Output:
	// init() done
	// scored 3 rows
}
