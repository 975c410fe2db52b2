package benchkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Cell is the measurement of one server under one load.
type Cell struct {
	RPS      float64
	P50, P99 time.Duration
	N, Errs  int
	CPU      time.Duration // CPU of the measured process trees per request; 0 if unknown
}

// Request returns the bytes of one POST request for path on addr, with
// extra header lines ("Name: value").
func Request(addr, path string, body []byte, headers ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, addr)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.Bytes()
}

// treesCPU is the CPU time of the process trees rooted at pids.
func treesCPU(pids []int) (time.Duration, bool) {
	var total time.Duration
	for _, p := range pids {
		c, ok := TreeCPU(p)
		if !ok {
			return 0, false
		}
		total += c
	}
	return total, len(pids) > 0
}

// Closed drives addr with c closed-loop clients (each sends its next
// request when the previous answer arrives) for warm+dur and reports the
// requests completed during dur; CPU is that of the process trees rooted at
// pids over dur, per request. A request answered with anything but 200
// counts as an error.
func Closed(addr string, req []byte, c int, warm, dur time.Duration, pids ...int) Cell {
	return ClosedWith(func() *Client { return &Client{Addr: addr} }, req, c, warm, dur, pids...)
}

// ClosedWith is Closed with each of the c clients made by newClient (to
// dial through TLS, for one).
func ClosedWith(newClient func() *Client, req []byte, c int, warm, dur time.Duration, pids ...int) Cell {
	start := time.Now()
	measureFrom := start.Add(warm)
	end := measureFrom.Add(dur)
	lats := make([][]time.Duration, c)
	errs := make([]int, c)
	var wg sync.WaitGroup
	var cpu time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Until(measureFrom))
		before, ok1 := treesCPU(pids)
		time.Sleep(time.Until(end))
		after, ok2 := treesCPU(pids)
		if ok1 && ok2 {
			cpu = after - before
		}
	}()
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := newClient()
			defer cl.Close()
			lat := make([]time.Duration, 0, 4096)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				status, err := cl.Do(req)
				t1 := time.Now()
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil || status != 200 {
					errs[i]++
					if err != nil {
						time.Sleep(time.Millisecond)
					}
					continue
				}
				if t1.After(end) {
					// Count only requests that completed inside the window.
					break
				}
				lat = append(lat, t1.Sub(t0))
			}
			lats[i] = lat
		}()
	}
	wg.Wait()
	var all []time.Duration
	m := Cell{}
	for i := range c {
		all = append(all, lats[i]...)
		m.Errs += errs[i]
	}
	m.fill(all, dur)
	if m.N > 0 {
		m.CPU = cpu / time.Duration(m.N)
	}
	return m
}

func (m *Cell) fill(lats []time.Duration, dur time.Duration) {
	slices.Sort(lats)
	m.N = len(lats)
	m.RPS = float64(m.N) / dur.Seconds()
	m.P50 = Percentile(lats, 50)
	m.P99 = Percentile(lats, 99)
}

// Percentile returns the p-th percentile of sorted durations (0 if none).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p/100))]
}

// Sample is one request of an open-loop run.
type Sample struct {
	At     time.Duration // scheduled send time, from the run's start
	Lat    time.Duration // from the scheduled send time to the answer's end
	Status int           // 0 when the request failed without an answer
}

// Even returns the send times of rate requests/s for dur, evenly spaced.
func Even(rate float64, dur time.Duration) []time.Duration {
	n := int(rate * dur.Seconds())
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(float64(i) / rate * float64(time.Second))
	}
	return out
}

// Open sends req to addr at the given times after its start (open loop:
// the schedule does not wait for answers) over up to conns connections,
// and returns one Sample per request in schedule order. Latency counts
// from the scheduled time, so time spent waiting for a free connection
// counts too.
func Open(addr string, req []byte, at []time.Duration, conns int) []Sample {
	out := make([]Sample, len(at))
	jobs := make(chan int, len(at))
	start := time.Now().Add(20 * time.Millisecond)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &Client{Addr: addr}
			defer cl.Close()
			sl := NewSleeper()
			defer sl.Close()
			for i := range jobs {
				due := start.Add(at[i])
				sl.Until(due)
				status, err := cl.Do(req)
				if err != nil {
					status = 0
				}
				out[i] = Sample{At: at[i], Lat: time.Since(due), Status: status}
			}
		}()
	}
	// Release each job shortly before it is due; a worker sleeps until then
	// (on a timer of its own, precise to microseconds: see Sleeper).
	rel := NewSleeper()
	defer rel.Close()
	for i := range at {
		rel.Until(start.Add(at[i] - time.Millisecond))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

// OpenCell runs Open at a fixed rate for dur and summarizes it; CPU is that
// of the process trees rooted at pids, per request.
func OpenCell(addr string, req []byte, rate float64, dur time.Duration, conns int, pids ...int) Cell {
	before, ok1 := treesCPU(pids)
	ss := Open(addr, req, Even(rate, dur), conns)
	after, ok2 := treesCPU(pids)
	var lats []time.Duration
	m := Cell{}
	for _, s := range ss {
		if s.Status != 200 {
			m.Errs++
			continue
		}
		lats = append(lats, s.Lat)
	}
	m.fill(lats, dur)
	if ok1 && ok2 && m.N > 0 {
		m.CPU = (after - before) / time.Duration(m.N)
	}
	return m
}

// Client is a minimal HTTP/1.1 client: one connection, reused while the
// server keeps it open (gunicorn's sync workers close it after each reply).
type Client struct {
	Addr string
	// Dial opens the connection to Addr; nil dials TCP.
	Dial func(addr string) (net.Conn, error)
	conn net.Conn
	br   *bufio.Reader
}

// Close closes the connection, if any.
func (c *Client) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

var errBadResponse = errors.New("malformed HTTP response")

// Do sends one request (as Request builds it) and reads the answer,
// returning its status.
func (c *Client) Do(req []byte) (int, error) {
	if c.conn == nil {
		dial := c.Dial
		if dial == nil {
			dial = func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }
		}
		conn, err := dial(c.Addr)
		if err != nil {
			return 0, err
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 64<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	if _, err := c.conn.Write(req); err != nil {
		c.Close()
		return 0, err
	}
	status, err := c.readResponse()
	if err != nil {
		c.Close()
	}
	return status, err
}

func (c *Client) readResponse() (int, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, errBadResponse
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, errBadResponse
	}
	length := -1
	closeAfter := bytes.HasPrefix(line, []byte("HTTP/1.0"))
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, errBadResponse
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, err = strconv.Atoi(string(v))
			if err != nil {
				return 0, errBadResponse
			}
		case bytes.EqualFold(k, []byte("Connection")):
			closeAfter = bytes.EqualFold(v, []byte("close"))
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, fmt.Errorf("%w: chunked responses are not supported", errBadResponse)
		}
	}
	if length < 0 {
		if !closeAfter {
			return 0, fmt.Errorf("%w: no Content-Length", errBadResponse)
		}
		_, err := io.Copy(io.Discard, c.br)
		c.Close()
		return status, err
	}
	if _, err := c.br.Discard(length); err != nil {
		return 0, err
	}
	if closeAfter {
		c.Close()
	}
	return status, nil
}
