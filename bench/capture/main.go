// Command capture measures what model data collection and request
// telemetry cost a replica: the throughput and p99 latency of an echo
// score.py that collects its input and its output with
// azureml.monitoring.ModelDataCollector and prints one line per request,
// with collection and telemetry on (records written to a local store, and
// telemetry as JSON lines, in a temporary directory) and both off, in the
// same run, interleaved, on loopback, with one closed-loop load
// generator in this program (every client sends its next request when the
// previous answer arrives).
//
//	go run ./bench/capture          # 3 rounds of 2 s cells
//	go run ./bench/capture -quick   # 1 round of 1 s cells
//
// The output ends with "RESULT capture_rps_ratio=… capture_p99_ratio=…
// capture_dropped=… capture_telemetry_dropped=…": the ratios are on ÷ off
// (throughput: the goal is ≥ 0.95; p99: within noise of 1),
// capture_dropped the model data records the buffer refused (the store did
// not keep up), capture_telemetry_dropped the telemetry records likewise.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aksml/aksml/scoring"
)

const script = `import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("echo", designation="inputs", feature_names=["a", "b", "c"])
    prediction_dc = ModelDataCollector("echo", designation="predictions", feature_names=["a", "b", "c"])

def run(raw_data):
    data = json.loads(raw_data)["data"]
    ctx = inputs_dc.collect(data)
    prediction_dc.collect(data, user_correlation_id=ctx.correlation_id)
    print("scored", len(data), "rows")
    return data
`

var (
	quick       = flag.Bool("quick", false, "one round of 1 s cells")
	python      = flag.String("python", "/usr/bin/python3", "Python interpreter")
	workers     = flag.Int("workers", 2, "Python worker processes")
	concurrency = flag.Int("concurrency", 8, "clients")
	duration    = flag.Duration("duration", 2*time.Second, "measured time per cell")
	rounds      = flag.Int("rounds", 3, "interleaved rounds")
	collect     = flag.Bool("collect", true, "the on side collects model data")
	telemetry   = flag.Bool("telemetry", true, "the on side records request telemetry")
)

type cell struct {
	rps float64
	p99 time.Duration
}

func main() {
	flag.Parse()
	if *quick {
		*duration, *rounds = time.Second, 1
	}
	dir, err := os.MkdirTemp("", "aksml-capture-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "score.py"), []byte(script), 0o644); err != nil {
		log.Fatal(err)
	}
	store := filepath.Join(dir, "ws")
	sink, err := scoring.NewJSONLinesSink(filepath.Join(dir, "telemetry.jsonl"))
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	var dc *scoring.DataCollection
	var tel *scoring.Telemetry
	if *collect {
		dc = &scoring.DataCollection{Store: &scoring.LocalModelDataStore{Root: store}, Service: "capture"}
	}
	if *telemetry {
		tel = &scoring.Telemetry{Sink: sink, Service: "capture", Version: "capture", Replica: "capture-0"}
	}
	on, onStats := start(dir, dc, tel)
	off, offClose := start(dir, nil, nil)
	var onCells, offCells []cell
	for r := range *rounds {
		for _, side := range []string{"off", "on"} {
			url := off
			if side == "on" {
				url = on
			}
			c := load(url)
			fmt.Printf("round %d capture %-3s  %8.0f req/s  p99 %v\n", r+1, side, c.rps, c.p99.Round(10*time.Microsecond))
			if side == "on" {
				onCells = append(onCells, c)
			} else {
				offCells = append(offCells, c)
			}
		}
	}
	all := onStats()
	st, ts := all.DataCollection, all.Telemetry
	offClose()
	rps := func(cs []cell) float64 {
		return slices.MaxFunc(cs, func(a, b cell) int { return int(a.rps - b.rps) }).rps
	}
	p99 := func(cs []cell) time.Duration {
		return slices.MinFunc(cs, func(a, b cell) int { return int(a.p99 - b.p99) }).p99
	}
	fmt.Printf("collection on: %+v\ntelemetry on: %+v\n", st, ts)
	fmt.Printf("RESULT capture_rps_ratio=%.3f capture_p99_ratio=%.3f capture_dropped=%d capture_written=%d capture_collected=%d capture_telemetry_dropped=%d capture_telemetry_sent=%d capture_telemetry_recorded=%d\n",
		rps(onCells)/rps(offCells), float64(p99(onCells))/float64(p99(offCells)), st.Dropped, st.Written, st.Collected,
		ts.Dropped, ts.Sent, ts.Recorded)
}

// start runs a replica of score.py on loopback and returns its /score URL
// and its counters (read after the replica closed).
func start(dir string, dc *scoring.DataCollection, tel *scoring.Telemetry) (string, func() scoring.Stats) {
	srv, err := scoring.NewServer(scoring.Config{EntryScript: "score.py", SourceDir: dir, Interpreter: *python,
		Workers: *workers, DataCollection: dc, Telemetry: tel})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if err := srv.Wait(ctx); err != nil {
		log.Fatalf("%v\n%s", err, strings.Join(srv.Logs(20, false), "\n"))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String() + "/score", func() scoring.Stats {
		hs.Close()
		srv.Close()
		return srv.Stats()
	}
}

// load drives url with the closed-loop clients for one cell.
func load(url string) cell {
	tr := &http.Transport{MaxIdleConnsPerHost: *concurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := `{"data": [[1.5, 2, "x"], [3, 4.25, "y"]]}`
	deadline := time.Now().Add(*duration)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					log.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					log.Fatalf("status %d", resp.StatusCode)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	return cell{rps: float64(len(lat)) / duration.Seconds(), p99: lat[len(lat)*99/100]}
}
