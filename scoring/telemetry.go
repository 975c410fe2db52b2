package scoring

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DefaultTelemetryBuffer is how many telemetry records a replica holds while
// its sink sends them.
const DefaultTelemetryBuffer = 10000

// telemetryBatch bounds the records handed to a sink at once. The exporter
// takes only what was waiting when the batch began, so the replica holds at
// most Buffer + min(Buffer+1, telemetryBatch) records.
const telemetryBatch = 512

// captureLinger is how long a replica's background writers (telemetry's
// exporter, data collection's writer) wait, once a record has arrived, for
// more to join it before they hand a batch to the sink or the store (unless
// a full batch is waiting already). Records reach the sink at most this much
// later, and a busy replica pays one export (a write, an OTLP request) per
// batch instead of one per record.
const captureLinger = 50 * time.Millisecond

// gather waits, after the first record of a batch was taken, until the
// linger has passed, full more records are waiting (waiting of them were
// when it began), or stop is closed (the replica closes: what is buffered
// goes out at once). t is the caller's timer, stopped.
func gather(waiting, full int, t *time.Timer, stop <-chan struct{}) {
	if waiting >= full {
		return
	}
	t.Reset(captureLinger)
	select {
	case <-t.C:
	case <-stop:
		t.Stop()
	}
}

// captureQueue is the bounded buffer between the request path and a
// background writer (telemetry's exporter, data collection's writer): a
// ring of at most limit records under one mutex. A record is put without
// waiting (a full queue refuses it); the writer is woken only when a
// record arrives in an empty queue (or the queue closes), and it takes
// the records of a batch together, under one lock.
type captureQueue[T any] struct {
	mu     sync.Mutex
	ring   []T // grown up to limit as records wait
	head   int
	n      int
	limit  int
	closed bool
	// wake holds a token when a record arrived in an empty queue, or the
	// queue closed, since the writer last looked.
	wake chan struct{}
}

// captureQueueStart is the ring's first size; it doubles, up to the
// queue's limit, when records wait in a full ring.
const captureQueueStart = 256

func newCaptureQueue[T any](limit int) *captureQueue[T] {
	return &captureQueue[T]{limit: limit, ring: make([]T, min(limit, captureQueueStart)), wake: make(chan struct{}, 1)}
}

// put adds v unless the queue is full or closed; closed tells which. The
// caller holds q.mu.
func (q *captureQueue[T]) putLocked(v *T) (ok, closed bool) {
	switch {
	case q.closed:
		return false, true
	case q.n == len(q.ring):
		if q.n >= q.limit {
			return false, false
		}
		q.grow()
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = *v
	q.n++
	if q.n == 1 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true, false
}

// grow doubles the ring (up to the limit), its records first.
func (q *captureQueue[T]) grow() {
	ring := make([]T, min(q.limit, 2*len(q.ring)))
	k := copy(ring, q.ring[q.head:min(q.head+q.n, len(q.ring))])
	copy(ring[k:], q.ring[:q.n-k])
	q.ring, q.head = ring, 0
}

// roomLocked tells whether a record would be put. The caller holds q.mu.
func (q *captureQueue[T]) roomLocked() bool {
	return !q.closed && (q.n < len(q.ring) || q.n < q.limit)
}

// len is the number of records waiting.
func (q *captureQueue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// first waits for a record and takes it; false once the queue is closed
// and empty.
func (q *captureQueue[T]) first(v *T) bool {
	for {
		q.mu.Lock()
		if q.n > 0 {
			q.takeLocked(v)
			q.mu.Unlock()
			return true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return false
		}
		<-q.wake
	}
}

func (q *captureQueue[T]) takeLocked(v *T) {
	var zero T
	*v, q.ring[q.head] = q.ring[q.head], zero
	q.head++
	if q.head == len(q.ring) {
		q.head = 0
	}
	q.n--
}

// take appends at most max of the records waiting to dst.
func (q *captureQueue[T]) take(dst []T, max int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	for max > 0 && q.n > 0 {
		k := min(max, q.n, len(q.ring)-q.head)
		part := q.ring[q.head : q.head+k]
		dst = append(dst, part...)
		clear(part) // let what the records hold go
		q.head += k
		if q.head == len(q.ring) {
			q.head = 0
		}
		q.n -= k
		max -= k
	}
	return dst
}

// close refuses records from now on and wakes the writer; false if the
// queue was closed already.
func (q *captureQueue[T]) close() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.closed = true
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// telemetryClose bounds how long Close lets the sink send what is still
// buffered; records left after it are counted as dropped.
const telemetryClose = 10 * time.Second

// MaxPrintBytes bounds what score.py prints during one request that
// telemetry keeps (the replica log keeps all of it); the Python side counts
// the rest and says so in one last line.
const MaxPrintBytes = 64 << 10

// Telemetry turns on request telemetry (v1's enable_app_insights): for each
// scored request the replica records its time, duration, status, service,
// version, replica and request ids, and, for a Python entry script, every
// line run() printed on stdout or stderr while serving it, as v1's
// Application Insights captured them. Records are buffered in the replica
// (Buffer records at most; when the buffer is full, new records are dropped
// and counted) and handed to Sink by one background goroutine in batches, so
// a slow sink never slows a request.
type Telemetry struct {
	// Sink receives the records. Required. The server does not close it:
	// several replicas may share one sink, and its owner closes it after
	// the replicas.
	Sink TelemetrySink
	// Service names the service in the records. Empty means
	// Config.ServiceName.
	Service string
	// Version names the deployment (an AksEndpoint version, else the
	// service's model version) in the records.
	Version string
	// Replica names this replica in the records (a pod name). Empty means
	// the host name.
	Replica string
	// Buffer is the number of records held in the replica. Zero means
	// DefaultTelemetryBuffer.
	Buffer int
}

// TelemetrySink is where telemetry goes. The JSON-lines file sink is
// JSONLinesSink; package otlpsink sends OpenTelemetry over OTLP/HTTP.
type TelemetrySink interface {
	// Export sends records. The server calls it from one goroutine at a
	// time per replica (a sink shared by replicas must be safe for
	// concurrent use), with a context that ends when the replica's Close
	// gives up waiting. An error counts every record of the call as
	// failed. records is reused after Export returns.
	Export(ctx context.Context, records []TelemetryRecord) error
}

// Kinds of TelemetryRecord.
const (
	// TelemetryRequest is a scored request (an Application Insights
	// request; an OpenTelemetry span).
	TelemetryRequest = "request"
	// TelemetryPrint is one line score.py printed while serving a request
	// (an Application Insights trace; an OpenTelemetry log record).
	TelemetryPrint = "print"
)

// TelemetryRecord is one telemetry record.
type TelemetryRecord struct {
	// Kind is TelemetryRequest or TelemetryPrint.
	Kind string `json:"kind"`
	// Time is when the request arrived, or when the line was printed.
	Time time.Time `json:"time"`
	// Duration is the time from the request's arrival to the end of its
	// response (requests only).
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Status is the HTTP status of the response (requests only). A
	// response cut short (the client left, a stream failed) keeps the
	// status it started with.
	Status int    `json:"status,omitempty"`
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Service, Version and Replica are those of Telemetry.
	Service string `json:"service"`
	Version string `json:"version,omitempty"`
	Replica string `json:"replica,omitempty"`
	// RequestID is the request's x-ms-request-id as the replica answered
	// it: the router's id for a routed request (the id the caller sees in
	// the response), else the caller's, else a new one.
	RequestID string `json:"request_id"`
	// ClientRequestID is the id the caller sent: its
	// x-ms-client-request-id, else its x-request-id. Both pass the router
	// unchanged (the router replaces x-ms-request-id).
	ClientRequestID string `json:"client_request_id,omitempty"`
	// TraceID and ParentSpanID are those of the W3C traceparent header
	// the caller sent, when it sent one valid header (lowercase hex, 32
	// and 16 digits): the request belongs to that trace, as a child of
	// that span (the OTLP sink makes its span so). Empty otherwise. Print
	// records carry those of their request.
	TraceID      string `json:"trace_id,omitempty"`
	ParentSpanID string `json:"parent_span_id,omitempty"`
	// Stream is "stdout" or "stderr" (prints only).
	Stream string `json:"stream,omitempty"`
	// Message is the printed line, without its newline (prints only).
	Message string `json:"message,omitempty"`
}

// TelemetryStats counts a replica's telemetry records: Recorded were
// made (requests and print lines), Sent reached the sink, Dropped were
// refused because the buffer was full (or left in it at Close), Failed were
// refused by the sink or malformed. Once the buffer is empty,
// Sent + Dropped + Failed == Recorded.
type TelemetryStats struct {
	Recorded, Sent, Dropped, Failed int64
}

// TelemetryStats returns the replica's telemetry counters (all zero when
// telemetry is off).
func (s *Server) TelemetryStats() TelemetryStats {
	if s.tel == nil {
		return TelemetryStats{}
	}
	return s.tel.stats()
}

// telemetry buffers a replica's records and exports them in the background.
type telemetry struct {
	cfg  *Telemetry
	srv  *Server
	q    *captureQueue[TelemetryRecord]
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}
	// closing is closed when the replica closes: the exporter stops
	// lingering.
	closing chan struct{}

	recorded, sent, dropped, failed atomic.Int64

	// traces holds the trace context of the requests in flight that came
	// with a valid traceparent, by request id, for their print records
	// (a *traceContext); traced counts them, so that requests without
	// one never touch the map.
	traces sync.Map
	traced atomic.Int64
}

func newTelemetry(s *Server, cfg *Telemetry) *telemetry {
	ctx, cancel := context.WithCancel(context.Background())
	t := &telemetry{cfg: cfg, srv: s, q: newCaptureQueue[TelemetryRecord](cfg.Buffer), ctx: ctx, stop: cancel,
		done: make(chan struct{}), closing: make(chan struct{})}
	go t.export()
	return t
}

func (t *telemetry) stats() TelemetryStats {
	return TelemetryStats{Recorded: t.recorded.Load(), Sent: t.sent.Load(), Dropped: t.dropped.Load(), Failed: t.failed.Load()}
}

// offer takes one record without ever waiting.
func (t *telemetry) offer(rec TelemetryRecord) {
	t.recorded.Add(1)
	rec.Service, rec.Version, rec.Replica = t.cfg.Service, t.cfg.Version, t.cfg.Replica
	t.q.mu.Lock()
	ok, closed := t.q.putLocked(&rec)
	t.q.mu.Unlock()
	if !ok {
		if t.dropped.Add(1) == 1 && !closed {
			t.srv.event(slog.LevelWarn, fmt.Sprintf("telemetry: the buffer of %d records is full; records are dropped (and counted) until the sink catches up", t.cfg.Buffer))
		}
	}
}

// export drains the buffer into the sink in batches, lingering for a
// batch to fill (see captureLinger).
func (t *telemetry) export() {
	defer close(t.done)
	batch := make([]TelemetryRecord, 0, telemetryBatch)
	var failures int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	batch = batch[:1]
	for t.q.first(&batch[0]) {
		gather(t.q.len(), telemetryBatch-1, timer, t.closing)
		batch = t.q.take(batch, telemetryBatch-1)
		n := int64(len(batch))
		switch {
		case t.ctx.Err() != nil:
			t.dropped.Add(n)
		default:
			if err := t.cfg.Sink.Export(t.ctx, batch); err != nil {
				if t.ctx.Err() != nil {
					t.dropped.Add(n)
					break
				}
				// One event per failure streak start, and then every
				// hundredth, so a dead sink does not flood the log. The
				// event is written before the records count as failed, so
				// whoever sees the count sees the event too.
				if failures%100 == 0 {
					t.srv.event(slog.LevelError, fmt.Sprintf("telemetry: %d record(s) could not be sent: %v", n, err))
				}
				failures++
				t.failed.Add(n)
				break
			}
			failures = 0
			t.sent.Add(n)
		}
		clear(batch) // let the strings go
		batch = batch[:1]
	}
}

// close stops taking records, lets the sink send what is buffered for at
// most telemetryClose, and waits for the exporter.
func (t *telemetry) close() {
	if t.q.close() {
		close(t.closing)
	}
	tm := t.srv.cfg.Clock.AfterFunc(telemetryClose, t.stop)
	<-t.done
	tm.Stop()
	t.stop()
}

// validate checks a Telemetry (nil is valid: telemetry off).
func (c *Telemetry) validate() error {
	if c == nil {
		return nil
	}
	var errs []error
	if c.Sink == nil {
		errs = append(errs, errors.New("Telemetry.Sink: is nil; a sink is required when telemetry is on"))
	}
	if c.Buffer < 0 {
		errs = append(errs, fmt.Errorf("Telemetry.Buffer: %d is negative; it must be 0 (the default, %d) or more", c.Buffer, DefaultTelemetryBuffer))
	}
	return errors.Join(errs...)
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer (a
// streamed response flushes through it).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

// clientRequestID is the request id a caller sent that the router passes
// on: x-ms-client-request-id, else x-request-id.
func clientRequestID(r *http.Request) string {
	if v := first(r.Header[hdrKeyClientRequestID]); v != "" {
		return v
	}
	return first(r.Header[hdrKeyRequestID])
}

// scoreWithTelemetry serves /score and records the request.
func (s *Server) scoreWithTelemetry(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Clock.Now()
	rec := recorderPool.Get().(*statusRecorder)
	*rec = statusRecorder{ResponseWriter: w}
	tc, traced := requestTrace(r)
	if traced {
		id := first(w.Header()[hdrKeyMSRequestID])
		// For the print records of the request, which arrive before its
		// reply.
		s.tel.traced.Add(1)
		p := &tc
		s.tel.traces.Store(id, p)
		defer func() {
			s.tel.traces.CompareAndDelete(id, p)
			s.tel.traced.Add(-1)
		}()
	}
	defer func() {
		// Also when the handler panics to abort the response.
		s.tel.offer(TelemetryRecord{Kind: TelemetryRequest, Time: start, Duration: s.cfg.Clock.Since(start),
			Status: rec.status, Method: r.Method, Path: r.URL.Path,
			RequestID: first(w.Header()[hdrKeyMSRequestID]), ClientRequestID: clientRequestID(r),
			TraceID: tc.traceID, ParentSpanID: tc.parentID})
		*rec = statusRecorder{}
		recorderPool.Put(rec)
	}()
	s.serveScore(rec, r)
}

// MaxPrintFrame bounds one L frame from a worker: MaxPrintBytes
// characters of UTF-8 (4 bytes each at most) and the framing of the writes
// that printed them.
const MaxPrintFrame = 16 * MaxPrintBytes

// offerPrints turns an L frame (see pyhost/host.py: the request's ids, its
// start, then the texts written to stdout and stderr) into one print record
// per line.
func (t *telemetry) offerPrints(payload []byte) {
	if err := t.eachPrint(payload, t.srv.cfg.Clock.Now); err != nil {
		t.recorded.Add(1)
		t.failed.Add(1)
		t.srv.event(slog.LevelError, "telemetry: malformed print record from a worker: "+err.Error())
	}
}

// eachPrint parses an L frame and offers its lines; a malformed frame is
// an error, and the lines before the fault are offered.
func (t *telemetry) eachPrint(p []byte, now func() time.Time) error {
	id, p, ok1 := cutShort(p)
	client, p, ok2 := cutShort(p)
	if !ok1 || !ok2 || len(p) < 8 {
		return errors.New("the request ids and start time are cut short")
	}
	start := math.Float64frombits(binary.BigEndian.Uint64(p))
	p = p[8:]
	var ts time.Time
	if start > 0 && start < 1e11 {
		ts = time.Unix(0, int64(start*1e9))
	} else {
		ts = now()
	}
	rec := TelemetryRecord{Kind: TelemetryPrint, Time: ts, RequestID: string(id), ClientRequestID: string(client)}
	if t.traced.Load() > 0 {
		if tc, ok := t.traces.Load(rec.RequestID); ok {
			rec.TraceID, rec.ParentSpanID = tc.(*traceContext).traceID, tc.(*traceContext).parentID
		}
	}
	// The texts of consecutive parts of one stream are joined, then split
	// into lines; a last empty line (the text ended with a newline) is not
	// one.
	var text []byte
	var stream byte
	flush := func() {
		if len(text) == 0 {
			return
		}
		rec.Stream = "stdout"
		if stream == 'e' {
			rec.Stream = "stderr"
		}
		for line := range bytes.SplitSeq(bytes.TrimSuffix(text, []byte("\n")), []byte("\n")) {
			rec.Message = string(line)
			t.offer(rec)
		}
		text = text[:0]
	}
	for len(p) > 0 {
		if len(p) < 5 {
			flush()
			return fmt.Errorf("a part's header is cut short (%d bytes)", len(p))
		}
		kind, n := p[0], binary.BigEndian.Uint32(p[1:5])
		if uint64(n) > uint64(len(p)-5) {
			flush()
			return fmt.Errorf("a part of %d bytes in the %d bytes left", n, len(p)-5)
		}
		body := p[5 : 5+n]
		p = p[5+n:]
		switch kind {
		case 'o', 'e':
			if kind != stream {
				flush()
				stream = kind
			}
			text = append(text, body...)
		case 'l':
			flush()
			stream = 0
			lost, err := strconv.ParseUint(string(body), 10, 63)
			if err != nil {
				return fmt.Errorf("the count of characters lost %q is not a number", body)
			}
			rec.Stream, rec.Message = "stderr", fmt.Sprintf("[aksml: %d more characters printed during this request are in the replica log only]", lost)
			t.offer(rec)
		default:
			flush()
			return fmt.Errorf("a part of kind %q; want o (stdout), e (stderr) or l (characters lost)", kind)
		}
	}
	flush()
	return nil
}

// cutShort cuts a string of one length byte and that many bytes off p.
func cutShort(p []byte) (s, rest []byte, ok bool) {
	if len(p) < 1 || int(p[0]) > len(p)-1 {
		return nil, p, false
	}
	return p[1 : 1+p[0]], p[1+p[0]:], true
}

// JSONLinesSink writes telemetry records to a file, one JSON object a line
// (TelemetryRecord's fields), appending. It is safe for concurrent use, so
// replicas may share one.
type JSONLinesSink struct {
	mu    sync.Mutex
	f     *os.File
	buf   []byte
	times rfc3339Cache
}

// jsonLinesWrite is how many bytes of lines JSONLinesSink gathers before it
// writes them to the file.
const jsonLinesWrite = 64 << 10

// NewJSONLinesSink opens (creating, appending to) the file at path.
func NewJSONLinesSink(path string) (*JSONLinesSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &JSONLinesSink{f: f}, nil
}

// Export implements TelemetrySink: the records are written to the file
// before it returns.
func (j *JSONLinesSink) Export(ctx context.Context, records []TelemetryRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return os.ErrClosed
	}
	b := j.buf[:0]
	for i := range records {
		b = j.times.appendRecordJSON(b, &records[i])
		b = append(b, '\n')
		if len(b) >= jsonLinesWrite || i == len(records)-1 {
			if _, err := j.f.Write(b); err != nil {
				j.keep(b)
				return err
			}
			b = b[:0]
		}
	}
	j.keep(b)
	return nil
}

// keep keeps b's memory for the next Export, unless a huge line grew it.
func (j *JSONLinesSink) keep(b []byte) {
	if cap(b) > 4*jsonLinesWrite {
		b = nil
	}
	j.buf = b[:0]
}

// appendRecordJSON appends r as encoding/json (with SetEscapeHTML(false))
// writes it, without reflection: the sink encodes every record a replica
// makes.
func appendRecordJSON(b []byte, r *TelemetryRecord) []byte {
	var c rfc3339Cache
	return c.appendRecordJSON(b, r)
}

// rfc3339Cache remembers the last two seconds a time was formatted in
// (with their locations), so that the records of a second format only
// their fraction: a batch holds the records of a second or two, and a
// request's printed lines may have the time of its start.
type rfc3339Cache struct {
	secs [2]rfc3339Second
	last int // the entry used last
}

type rfc3339Second struct {
	sec  int64
	loc  *time.Location
	text []byte // the second as time.RFC3339 writes it
	at   int    // where text's zone (Z or ±hh:mm) starts
}

// appendTime appends t as t.AppendFormat(b, time.RFC3339Nano) does: the
// second's text, with the nanoseconds (their trailing zeros cut) before
// its zone.
func (c *rfc3339Cache) appendTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	e := &c.secs[c.last]
	if e.text == nil || e.sec != sec || e.loc != loc {
		c.last ^= 1
		e = &c.secs[c.last]
		if e.text == nil || e.sec != sec || e.loc != loc {
			e.sec, e.loc = sec, loc
			e.text = t.Truncate(time.Second).AppendFormat(e.text[:0], time.RFC3339)
			e.at = bytes.IndexByte(e.text, 'T') + len("T15:04:05")
		}
	}
	b = append(b, e.text[:e.at]...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, e.text[e.at:]...)
}

// appendRecordJSON is appendRecordJSON with c's memory of the last second.
func (c *rfc3339Cache) appendRecordJSON(b []byte, r *TelemetryRecord) []byte {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, r.Kind)
	b = append(b, `,"time":"`...)
	b = c.appendTime(b, r.Time)
	b = append(b, '"')
	if r.Duration != 0 {
		b = append(b, `,"duration_ns":`...)
		b = strconv.AppendInt(b, int64(r.Duration), 10)
	}
	if r.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
	}
	b = appendJSONField(b, `,"method":`, r.Method, true)
	b = appendJSONField(b, `,"path":`, r.Path, true)
	b = appendJSONField(b, `,"service":`, r.Service, false)
	b = appendJSONField(b, `,"version":`, r.Version, true)
	b = appendJSONField(b, `,"replica":`, r.Replica, true)
	b = appendJSONField(b, `,"request_id":`, r.RequestID, false)
	b = appendJSONField(b, `,"client_request_id":`, r.ClientRequestID, true)
	b = appendJSONField(b, `,"trace_id":`, r.TraceID, true)
	b = appendJSONField(b, `,"parent_span_id":`, r.ParentSpanID, true)
	b = appendJSONField(b, `,"stream":`, r.Stream, true)
	b = appendJSONField(b, `,"message":`, r.Message, true)
	return append(b, '}')
}

func appendJSONField(b []byte, key, v string, omitEmpty bool) []byte {
	if v == "" && omitEmpty {
		return b
	}
	return appendJSONString(append(b, key...), v)
}

// appendJSONString appends s as a JSON string the way encoding/json does
// without HTML escaping: control characters, quotes and backslashes
// escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; ; {
		// Plain bytes (ASCII a JSON string holds as it is) are copied
		// as they are: eight at a time, then one at a time up to the
		// first that is not.
		for i+8 <= len(s) && plainJSON8(s[i:i+8]) {
			i += 8
		}
		for i < len(s) && jsonPlain[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonPlain tells the bytes a JSON string holds as they are: ASCII but
// control characters, the quote and the backslash.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainJSON8 tells whether the 8 bytes of s are all plain (see jsonPlain).
func plainJSON8(s string) bool {
	_ = s[7]
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	// The classic tests of "has a byte below n" and "has a zero byte" (of
	// x^quotes, x^backslashes) set some high bit exactly when such a byte
	// is there; non-ASCII bytes have theirs set.
	const ones = 0x0101010101010101
	q, bs := x^(ones*'"'), x^(ones*'\\')
	return (x-ones*0x20|(q-ones)&^q|(bs-ones)&^bs|x)&(ones*0x80) == 0
}

// Close closes the file.
func (j *JSONLinesSink) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// ReadTelemetry reads the records of a JSON-lines telemetry file (as
// JSONLinesSink writes them); a line that is not a record is an error
// naming its number.
func ReadTelemetry(path string) ([]TelemetryRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readTelemetry(bufio.NewReader(f))
}

func readTelemetry(r *bufio.Reader) ([]TelemetryRecord, error) {
	var out []TelemetryRecord
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var rec TelemetryRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return out, fmt.Errorf("telemetry line %d: %w", n, err)
		}
		if rec.Kind != TelemetryRequest && rec.Kind != TelemetryPrint {
			return out, fmt.Errorf("telemetry line %d: kind %q is neither %q nor %q", n, rec.Kind, TelemetryRequest, TelemetryPrint)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// MultiSink sends every batch to each of its sinks in turn; its error joins
// theirs (the batch then counts as failed, though some sinks took it).
type MultiSink []TelemetrySink

// Export implements TelemetrySink.
func (m MultiSink) Export(ctx context.Context, records []TelemetryRecord) error {
	var errs []error
	for _, s := range m {
		errs = append(errs, s.Export(ctx, records))
	}
	return errors.Join(errs...)
}

// TelemetryFile is where aksml-score (AKSML_TELEMETRY_DIR=root), the
// simulator and the local cluster write a replica's telemetry as JSON
// lines: root/telemetry/<service>/<replica>.jsonl, one file per replica so
// that no two processes append to one file.
func TelemetryFile(root, service, replica string) string {
	return filepath.Join(root, "telemetry", service, replica+".jsonl")
}

// ReadServiceTelemetry reads the telemetry of every replica of a service
// below root (see TelemetryFile), file by file in name order.
func ReadServiceTelemetry(root, service string) ([]TelemetryRecord, error) {
	files, err := filepath.Glob(filepath.Join(root, "telemetry", service, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	var out []TelemetryRecord
	for _, f := range files {
		recs, err := ReadTelemetry(f)
		if err != nil {
			return out, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, recs...)
	}
	return out, nil
}
