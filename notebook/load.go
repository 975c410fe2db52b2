package notebook

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/frontend"
	"github.com/aksml/aksml/webservice"
)

// LoadOptions are the options of RunLoad; nil means defaults.
type LoadOptions struct {
	// Requests is how many requests to send in all: 100 by default, at
	// most 100000.
	Requests int
	// Concurrency is how many callers send at once: 4 by default, at most
	// 256.
	Concurrency int
	// Key is sent as "Authorization: Bearer KEY" when not empty.
	Key string
	// Client sends the requests; nil means a client with a 60 s timeout.
	Client *http.Client
}

// LoadResult is what a load run saw.
type LoadResult struct {
	// Requests is how many requests were sent; OK how many were answered
	// with a 2xx status.
	Requests, OK int
	// Latencies holds each answered request's latency, in sending order.
	Latencies []time.Duration
	// ByVersion counts 2xx answers by the version that served them (the
	// front-end's aksml-served-by header; "" when absent).
	ByVersion map[string]int
	// Status counts answers by HTTP status; transport errors count as 0.
	Status map[int]int
	// Errors keeps the first few failure messages.
	Errors []string
	// Elapsed is the run's wall time.
	Elapsed time.Duration
}

const maxKeptErrors = 5

// RunLoad posts body to uri opts.Requests times from opts.Concurrency
// callers and records what came back. It stops early when ctx ends; the
// requests not sent then are not counted.
func RunLoad(ctx context.Context, uri, body string, opts *LoadOptions) *LoadResult {
	o := LoadOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Requests <= 0 {
		o.Requests = 100
	}
	o.Requests = min(o.Requests, 100000)
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	o.Concurrency = min(o.Concurrency, 256, o.Requests)
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 60 * time.Second}
	}
	res := &LoadResult{ByVersion: map[string]int{}, Status: map[int]int{}}
	lat := make([]time.Duration, o.Requests)
	answered := make([]bool, o.Requests)
	var mu sync.Mutex
	next := make(chan int)
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				code, version, err := post(ctx, o.Client, uri, body, o.Key)
				d := time.Since(t0)
				mu.Lock()
				res.Requests++
				res.Status[code]++
				switch {
				case err != nil:
					if len(res.Errors) < maxKeptErrors {
						res.Errors = append(res.Errors, err.Error())
					}
				case code/100 == 2:
					res.OK++
					res.ByVersion[version]++
				default:
					if len(res.Errors) < maxKeptErrors {
						res.Errors = append(res.Errors, "HTTP "+strconv.Itoa(code))
					}
				}
				if err == nil {
					lat[i], answered[i] = d, true
				}
				mu.Unlock()
			}
		}()
	}
send:
	for i := range o.Requests {
		select {
		case next <- i:
		case <-ctx.Done():
			break send
		}
	}
	close(next)
	wg.Wait()
	res.Elapsed = time.Since(start)
	for i, ok := range answered {
		if ok {
			res.Latencies = append(res.Latencies, lat[i])
		}
	}
	return res
}

func post(ctx context.Context, hc *http.Client, uri, body, key string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(frontend.HeaderServedBy), nil
}

// LoadEndpoint runs RunLoad against the endpoint's scoring URI with its
// primary key (or a fresh token when it uses token auth). input is sent as
// is when it is a string or []byte, as its JSON otherwise.
func LoadEndpoint(ctx context.Context, ep *endpoint.Endpoint, input string, opts *LoadOptions) (*LoadResult, error) {
	o := LoadOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Key == "" {
		switch ep.Record().Auth {
		case webservice.AuthKey:
			k, _, err := ep.Keys()
			if err != nil {
				return nil, err
			}
			o.Key = k
		case webservice.AuthToken:
			t, err := ep.Token(ctx)
			if err != nil {
				return nil, err
			}
			o.Key = t.AccessToken
		}
	}
	return RunLoad(ctx, ep.ScoringURI(), input, &o), nil
}

// Percentile returns the latency at percentile p (0–100) of the answered
// requests, nearest rank; 0 when none was answered.
func (r *LoadResult) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.Latencies)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Versions returns the versions that served requests, sorted.
func (r *LoadResult) Versions() []string {
	vs := make([]string, 0, len(r.ByVersion))
	for v := range r.ByVersion {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// Summary is one line: requests, successes, percentiles and the count per
// version.
func (r *LoadResult) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests, %d OK in %s; latency p50 %s p90 %s p99 %s", r.Requests, r.OK,
		r.Elapsed.Round(time.Millisecond), fmtDur(r.Percentile(50)), fmtDur(r.Percentile(90)), fmtDur(r.Percentile(99)))
	if len(r.ByVersion) > 0 {
		b.WriteString("; by version:")
		for _, v := range r.Versions() {
			fmt.Fprintf(&b, " %s=%d", versionLabel(v), r.ByVersion[v])
		}
	}
	return b.String()
}

func versionLabel(v string) string {
	if v == "" {
		return "(unnamed)"
	}
	return v
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// histogramBuckets is the number of bars of LatencyHistogram.
const histogramBuckets = 12

// LatencyHistogram draws the latencies as a histogram of equal-width
// buckets between the fastest and the slowest answer.
func (r *LoadResult) LatencyHistogram() Data {
	title := fmt.Sprintf("Latency of %d answers", len(r.Latencies))
	if len(r.Latencies) == 0 {
		return Data{Text: title, SVG: vbarChart(title, "latency", nil)}
	}
	lo, hi := slices.Min(r.Latencies), slices.Max(r.Latencies)
	width := (hi - lo) / histogramBuckets
	if width <= 0 {
		width = 1
	}
	counts := make([]int, histogramBuckets)
	for _, d := range r.Latencies {
		i := int((d - lo) / width)
		counts[min(i, histogramBuckets-1)]++
	}
	bars := make([]bar, histogramBuckets)
	var txt strings.Builder
	txt.WriteString(title + ":")
	for i, c := range counts {
		from := lo + time.Duration(i)*width
		bars[i] = bar{label: "≥" + fmtDur(from), value: float64(c), text: strconv.Itoa(c)}
		fmt.Fprintf(&txt, " [%s %d]", fmtDur(from), c)
	}
	return Data{Text: txt.String(), SVG: vbarChart(title, "latency (bucket start)", bars)}
}

// VersionCounts draws how many requests each version answered.
func (r *LoadResult) VersionCounts() Data {
	var bars []bar
	var txt strings.Builder
	txt.WriteString("requests by version:")
	for _, v := range r.Versions() {
		n := r.ByVersion[v]
		pct := 0.0
		if r.OK > 0 {
			pct = 100 * float64(n) / float64(r.OK)
		}
		bars = append(bars, bar{label: versionLabel(v), value: float64(n), text: fmt.Sprintf("%d (%.0f %%)", n, pct)})
		fmt.Fprintf(&txt, " %s=%d", versionLabel(v), n)
	}
	return Data{Text: txt.String(), SVG: hbarChart("Requests by version", bars, 0)}
}

// Data renders the result: its summary line with the latency histogram and
// the per-version counts side by side.
func (r *LoadResult) Data() Data {
	h, v := r.LatencyHistogram(), r.VersionCounts()
	s := r.Summary()
	return Data{
		Text: s + "\n" + v.Text + "\n" + h.Text,
		HTML: `<div class="aksml-load"><p>` + esc(s) + `</p><div style="display:flex;gap:16px;align-items:flex-start">` +
			v.SVG + h.SVG + `</div></div>`,
	}
}
