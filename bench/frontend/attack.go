//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The attack run (-attack) replays the hostile callers the router was
// hardened against, on the event-loop router and on nginx side by side,
// each at its default limits (the router's and nginx's own; both refuse
// bodies over 100 MB):
//
//   - bodies: a 100 MB upload with a Content-Length and chunked, and an
//     endless chunked upload (the proxy's CPU, its peak RSS, and for the
//     endless one the bytes the caller had sent when the 413 arrived);
//   - slow-loris: 500 connections that send a request head one byte a
//     second and never finish it (when the proxy closed them, and the p50
//     of a normal caller at 100 requests/s before and during);
//   - pipelining flood: a caller that pipelines requests and never reads an
//     answer, for 10 s (the proxy's peak RSS, and when it closed the caller);
//   - POST once: a replica that reads each request and drops the connection
//     without answering (how many times each POST reached it, and what the
//     caller got).
//
// Each proxy runs in its own process; RSS is sampled every 5 ms from
// /proc (nginx: master and workers summed).

type attackTarget struct {
	name string
	key  string // RESULT keys' prefix
	addr string // host:port
	pids func() []int
}

func orchestrateAttack(self, nginxBin string, cores int, routerEnv []string, replicaPorts []string, keep func(*child)) error {
	startRouter := func(env ...string) (attackTarget, error) {
		c, port, err := start(append(append(slices.Clone(routerEnv), "AKSML_BENCH_ENGINE=eventloop"), env...), self)
		if err != nil {
			return attackTarget{}, err
		}
		keep(c)
		return attackTarget{name: "aksml (event loop)", key: "aksml", addr: "127.0.0.1:" + port, pids: func() []int { return []int{c.cmd.Process.Pid} }}, nil
	}
	startNginxTarget := func(ports []string) (attackTarget, error) {
		c, port, err := startNginx(nginxBin, cores, ports, "")
		if err != nil {
			return attackTarget{}, err
		}
		keep(c)
		pid := c.cmd.Process.Pid
		return attackTarget{name: "nginx", key: "nginx", addr: "127.0.0.1:" + port, pids: func() []int { return append([]int{pid}, childPids(pid)...) }}, nil
	}
	// fresh starts a new process of the router (key "aksml") or nginx
	// over the replicas.
	fresh := func(key string) (attackTarget, error) {
		if key == "aksml" {
			return startRouter()
		}
		return startNginxTarget(replicaPorts)
	}
	fmt.Printf("bench/frontend -attack: %d cores; each proxy at its default limits, in its own process\n", cores)
	var results []string

	// Bodies: a fresh process per case, so that peak RSS is the case's.
	const limit = 100 << 20
	bodyCases := []struct {
		name, key string
		size      int64 // -1: endless
		chunked   bool
	}{
		{"100 MB, Content-Length", "body100", limit - 64<<10, false},
		{"100 MB, chunked", "chunked100", limit - 64<<10, true},
		{"endless, chunked", "oversized", -1, true},
	}
	fmt.Printf("\n%-20s %-24s %8s %10s %10s %14s %s\n", "proxy", "upload", "status", "CPU s", "peak RSS", "sent (MB)", "time")
	for _, bc := range bodyCases {
		for _, which := range []string{"aksml", "nginx"} {
			t, err := fresh(which)
			if err != nil {
				return err
			}
			r, err := uploadAttack(t, bc.size, bc.chunked)
			if err != nil {
				return fmt.Errorf("%s, %s: %v", t.name, bc.name, err)
			}
			fmt.Printf("%-20s %-24s %8d %10.2f %8.1f MB %14.1f %v\n", t.name, bc.name, r.status, r.cpu, float64(r.peakKB)/1024,
				float64(r.sent)/(1<<20), r.took.Round(10*time.Millisecond))
			key := t.key + "_" + bc.key
			results = append(results, fmt.Sprintf("%s_status=%d %s_cpu_s=%.2f %s_rss_mb=%.1f", key, r.status, key, r.cpu, key, float64(r.peakKB)/1024))
			if bc.size < 0 {
				results = append(results, fmt.Sprintf("%s_sent_mb=%.1f", key, float64(r.sent)/(1<<20)))
			}
		}
	}

	// Slow-loris, on both at once (the connections cost little CPU).
	router, err := startRouter()
	if err != nil {
		return err
	}
	ngx, err := startNginxTarget(replicaPorts)
	if err != nil {
		return err
	}
	fmt.Printf("\nslow-loris: 500 connections each, one byte of a request head a second; a normal caller at 100 req/s\n")
	fmt.Printf("%-20s %12s %12s %12s %14s %14s\n", "proxy", "closed", "last close", "still open", "p50 before", "p50 during")
	var wg sync.WaitGroup
	lr := make([]lorisResult, 2)
	for i, t := range []attackTarget{router, ngx} {
		wg.Add(1)
		go func() { defer wg.Done(); lr[i] = slowLoris(t, 500, 75*time.Second) }()
	}
	wg.Wait()
	for i, t := range []attackTarget{router, ngx} {
		r := lr[i]
		fmt.Printf("%-20s %12d %12v %12d %11.3f ms %11.3f ms\n", t.name, r.closed, r.last.Round(100*time.Millisecond), r.open, ms(r.p50Before), ms(r.p50During))
		key := t.key
		results = append(results, fmt.Sprintf("%s_loris_closed=%d %s_loris_last_s=%.1f %s_loris_p50_before_ms=%.3f %s_loris_p50_during_ms=%.3f",
			key, r.closed, key, r.last.Seconds(), key, ms(r.p50Before), key, ms(r.p50During)))
	}

	// Pipelining flood: a fresh process each.
	fmt.Printf("\npipelining flood: one caller pipelines requests for 10 s and reads nothing\n")
	fmt.Printf("%-20s %12s %12s %12s %s\n", "proxy", "RSS before", "peak RSS", "sent (MB)", "caller")
	for _, which := range []string{"aksml", "nginx"} {
		t, err := fresh(which)
		if err != nil {
			return err
		}
		r := pipelineFlood(t, 10*time.Second)
		fmt.Printf("%-20s %9.1f MB %9.1f MB %12.1f %s\n", t.name, float64(r.beforeKB)/1024, float64(r.peakKB)/1024, float64(r.sent)/(1<<20), r.outcome)
		results = append(results, fmt.Sprintf("%s_flood_rss_mb=%.1f", which, float64(r.peakKB)/1024))
	}

	// POST once: a replica that drops every connection after reading a
	// request.
	drop, err := newDropper()
	if err != nil {
		return err
	}
	defer drop.close()
	dropPort := strconv.Itoa(drop.ln.Addr().(*net.TCPAddr).Port)
	router, err = startRouter("AKSML_BENCH_REPLICAS=" + dropPort)
	if err != nil {
		return err
	}
	ngx, err = startNginxTarget([]string{dropPort})
	if err != nil {
		return err
	}
	const posts = 50
	fmt.Printf("\nPOST once: %d POSTs to a replica that reads each request and drops the connection\n", posts)
	fmt.Printf("%-20s %12s %14s %s\n", "proxy", "deliveries", "per POST", "caller statuses")
	for _, t := range []attackTarget{router, ngx} {
		before := drop.reads.Load()
		statuses := map[int]int{}
		for range posts {
			statuses[postOnce(t)]++
		}
		n := drop.reads.Load() - before
		fmt.Printf("%-20s %12d %14.2f %v\n", t.name, n, float64(n)/posts, statuses)
		key := t.key
		results = append(results, fmt.Sprintf("%s_post_deliveries_per_post=%.2f", key, float64(n)/posts))
	}
	fmt.Printf("\nRESULT %s\n", strings.Join(results, " "))
	return nil
}

// rssKB is the resident set of pids, in KiB (from /proc/PID/statm).
func rssKB(pids []int) int64 {
	var kb int64
	page := int64(os.Getpagesize()) / 1024
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/statm")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 1 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			kb += n * page
		}
	}
	return kb
}

// peakRSS samples the RSS of t every 5 ms until stop is closed and returns
// the largest sample.
func peakRSS(t attackTarget, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb := rssKB(t.pids()); kb > peak {
				peak = kb
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

type uploadResult struct {
	status int
	cpu    float64
	peakKB int64
	sent   int64
	took   time.Duration
}

// uploadAttack sends one upload of size bytes (-1: chunks until the proxy
// answers or closes) and reads the answer.
func uploadAttack(t attackTarget, size int64, chunked bool) (uploadResult, error) {
	// A small send buffer, so that what the caller counts as sent when
	// the answer comes is close to what reached the proxy (the proxy's
	// receive buffer, up to a few MB on loopback, still holds some).
	dl := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 64<<10) })
	}}
	c, err := dl.Dial("tcp", t.addr)
	if err != nil {
		return uploadResult{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Minute))
	stop := make(chan struct{})
	peak := peakRSS(t, stop)
	cpu0 := cpuSeconds(t.pids())
	start := time.Now()
	head := "POST /api/v1/service/" + service + "/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\n"
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
	}
	var sent atomic.Int64
	answered := make(chan struct{})
	go func() {
		piece := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		for size < 0 || sent.Load() < size {
			select {
			case <-answered:
				return
			default:
			}
			p := piece
			if size >= 0 && int64(len(p)) > size-sent.Load() {
				p = p[:size-sent.Load()]
			}
			if chunked {
				if _, err := fmt.Fprintf(c, "%x\r\n", len(p)); err != nil {
					return
				}
			}
			if _, err := c.Write(p); err != nil {
				return
			}
			sent.Add(int64(len(p)))
			if chunked {
				if _, err := io.WriteString(c, "\r\n"); err != nil {
					return
				}
			}
		}
		if chunked {
			io.WriteString(c, "0\r\n\r\n")
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	atSent := sent.Load()
	close(answered)
	r := uploadResult{sent: atSent, took: time.Since(start)}
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.status = resp.StatusCode
	}
	r.cpu = cpuSeconds(t.pids()) - cpu0
	close(stop)
	r.peakKB = <-peak
	if err != nil {
		return r, fmt.Errorf("no answer after %d bytes: %v", atSent, err)
	}
	return r, nil
}

type lorisResult struct {
	closed, open         int
	last                 time.Duration
	p50Before, p50During time.Duration
}

// slowLoris opens n connections that send a request head a byte a second,
// and measures when t closes them (waiting at most max) and what a normal
// caller sees before and during.
func slowLoris(t attackTarget, n int, max time.Duration) lorisResult {
	url := "http://" + t.addr + "/api/v1/service/" + service + "/score"
	normal := func(d time.Duration) time.Duration {
		cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
		defer cl.CloseIdleConnections()
		var lats []time.Duration
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			<-tick.C
			req, _ := http.NewRequest("POST", url, strings.NewReader(`{"data": [[1, 2]]}`))
			req.Header.Set("Authorization", "Bearer "+key)
			t0 := time.Now()
			resp, err := cl.Do(req)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lats = append(lats, time.Since(t0))
		}
		if len(lats) == 0 {
			return 0
		}
		slices.Sort(lats)
		return lats[len(lats)/2]
	}
	r := lorisResult{p50Before: normal(3 * time.Second)}
	head := "POST /api/v1/service/" + service + "/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\nX-Slow: " + strings.Repeat("a", 200)
	start := time.Now()
	var mu sync.Mutex
	var closedAt []time.Duration
	var wg sync.WaitGroup
	for range n {
		c, err := net.Dial("tcp", t.addr)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			done := make(chan struct{})
			go func() {
				// A read ends when the proxy closes (or answers 408).
				c.SetReadDeadline(start.Add(max))
				var b [512]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						var ne net.Error
						if !(errors.As(err, &ne) && ne.Timeout()) {
							mu.Lock()
							closedAt = append(closedAt, time.Since(start))
							mu.Unlock()
						}
						close(done)
						return
					}
				}
			}()
			for i := 0; ; i++ {
				if _, err := c.Write([]byte{head[i%len(head)]}); err != nil {
					break
				}
				select {
				case <-done:
					return
				case <-time.After(time.Second):
				}
			}
			<-done
		}()
	}
	r.p50During = normal(5 * time.Second)
	wg.Wait()
	r.closed = len(closedAt)
	r.open = n - r.closed
	if len(closedAt) > 0 {
		r.last = slices.Max(closedAt)
	}
	return r
}

type floodResult struct {
	beforeKB, peakKB, sent int64
	outcome                string
}

// pipelineFlood pipelines requests to t for at most d, reading nothing
// (with a small receive buffer), and reports t's peak RSS.
func pipelineFlood(t attackTarget, d time.Duration) floodResult {
	r := floodResult{beforeKB: rssKB(t.pids())}
	dl := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := dl.Dial("tcp", t.addr)
	if err != nil {
		r.outcome = "dial: " + err.Error()
		return r
	}
	defer c.Close()
	stop := make(chan struct{})
	peak := peakRSS(t, stop)
	req := []byte("POST /api/v1/service/" + service + "/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\nContent-Length: 18\r\n\r\n{\"data\": [[1, 2]]}")
	batch := bytes.Repeat(req, 256)
	end := time.Now().Add(d)
	r.outcome = "still open after 10 s"
	for time.Now().Before(end) {
		c.SetWriteDeadline(end)
		n, err := c.Write(batch)
		r.sent += int64(n)
		if err != nil {
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				r.outcome = "closed by the proxy: " + err.Error()
			}
			break
		}
	}
	close(stop)
	r.peakKB = <-peak
	return r
}

// dropper is a replica that reads one request on each connection and
// closes it without answering, counting the requests it read.
type dropper struct {
	ln    net.Listener
	reads atomic.Int64
	wg    sync.WaitGroup
}

func newDropper() (*dropper, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &dropper{ln: ln}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				if req.Method == http.MethodPost {
					d.reads.Add(1)
				}
			}()
		}
	}()
	return d, nil
}

func (d *dropper) close() { d.ln.Close(); d.wg.Wait() }

// postOnce sends one POST through t and returns the status (0: no answer).
func postOnce(t attackTarget) int {
	req, _ := http.NewRequest("POST", "http://"+t.addr+"/api/v1/service/"+service+"/score", strings.NewReader(`{"data": [[1, 2]]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
