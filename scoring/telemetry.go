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
	"unsafe"
)

// DefaultTelemetryBuffer is how many telemetry records a replica holds while
// its sink sends them.
const DefaultTelemetryBuffer = 10000

// captureLinger is how long a replica's background writers (telemetry's
// exporter, data collection's writer) wait, once a record has arrived, for
// more to join it before they hand a batch to the sink or the store (unless
// a full batch is waiting already). Records reach the sink at most this much
// later, and a busy replica pays one export (a write, an OTLP request) per
// batch instead of one per record.
const captureLinger = 50 * time.Millisecond

// gather is the writers' pause before they take a batch, once records
// arrived: none when waiting records (those waiting now) are full or more;
// else captureLinger, cut short when stop is closed (the replica closes:
// what is buffered goes out at once) or ready is signalled (helpers have
// formatted enough to write). t is the caller's timer, stopped.
func gather(waiting, full int, t *time.Timer, stop, ready <-chan struct{}) {
	if waiting >= full {
		return
	}
	t.Reset(captureLinger)
	select {
	case <-t.C:
	case <-stop:
		t.Stop()
	case <-ready:
		t.Stop()
	}
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
	// failed. records is reused after Export returns. The records'
	// strings are cut from one string per batch: a sink that keeps one of
	// them for long keeps the batch's text, and should keep a copy
	// (strings.Clone) instead.
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
	q    *captureLog
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}
	// closing is closed when the replica closes: the exporter stops
	// lingering.
	closing chan struct{}

	recorded, sent, dropped, failed atomic.Int64

	// ready is signalled when enough is encoded to write at once.
	ready chan struct{}
	// fmu is held by whoever makes records: the exporter, or a
	// connection helping (help). It guards what follows.
	fmu sync.Mutex
	// batch are the records made and not yet exported (with a JSON-lines
	// sink, encoded at once into encoded instead); pendingN counts them.
	batch    []TelemetryRecord
	encoded  []byte
	pendingN int64
	// failures counts the sink's failures in a row.
	failures int64
	times    rfc3339Cache
	// lines is the sink when it is a JSON-lines sink.
	lines *JSONLinesSink

	// traces holds the trace context of the requests in flight that came
	// with a valid traceparent, by request id, for their print records
	// (a *traceContext); traced counts them, so that requests without
	// one never touch the map.
	traces sync.Map
	traced atomic.Int64
}

// newTelemetry makes a replica's telemetry; its exporter is started apart
// (go t.export()): a capture writer process has none.
func newTelemetry(s *Server, cfg *Telemetry) *telemetry {
	ctx, cancel := context.WithCancel(context.Background())
	t := &telemetry{cfg: cfg, srv: s, q: newCaptureLog(cfg.Buffer), ctx: ctx, stop: cancel,
		done: make(chan struct{}), closing: make(chan struct{}), ready: make(chan struct{}, 1)}
	t.lines, _ = cfg.Sink.(*JSONLinesSink)
	return t
}

func (t *telemetry) stats() TelemetryStats {
	return TelemetryStats{Recorded: t.recorded.Load(), Sent: t.sent.Load(), Dropped: t.dropped.Load(), Failed: t.failed.Load()}
}

// The kinds of the telemetry log's entries.
const (
	// A request: its start (Unix ns), a flag byte (1: the start's zone is
	// UTC), its duration (ns), its status (4 bytes), then its method,
	// path, request id, client request id, trace id and parent span id,
	// each a uvarint length and the bytes.
	telEntryRequest = 'R'
	// An L frame: when it arrived (Unix ns), the flag byte, its request's
	// trace id and parent span id (as above), then the frame's payload.
	telEntryPrints = 'L'
)

// telString appends a uvarint length and s.
func telString[S string | []byte](b []byte, s S) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// telTime appends t as Unix nanoseconds and the zone flag.
func telTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	if t.Location() == time.UTC {
		return append(b, 1)
	}
	return append(b, 0)
}

// offerRequest takes a request's record without ever waiting: its fields
// are copied to the buffer, the record is made by the exporter.
func (t *telemetry) offerRequest(start time.Time, d time.Duration, status int, method, path, id, client string, tc traceContext) {
	t.recorded.Add(1)
	t.q.mu.Lock()
	ok, closed := t.q.roomLocked(1, 64+len(method)+len(path)+len(id)+len(client)+len(tc.traceID)+len(tc.parentID))
	if ok {
		at := t.q.beginLocked()
		b := append(t.q.buf, telEntryRequest)
		b = telTime(b, start)
		b = binary.BigEndian.AppendUint64(b, uint64(d))
		b = binary.BigEndian.AppendUint32(b, uint32(int32(status)))
		b = telString(b, method)
		b = telString(b, path)
		b = telString(b, id)
		b = telString(b, client)
		b = telString(b, tc.traceID)
		t.q.buf = telString(b, tc.parentID)
		t.q.endLocked(at, 1)
	}
	t.q.mu.Unlock()
	if !ok {
		t.dropped1(closed, 1)
	}
}

// dropped1 counts n records dropped, and warns on the first.
func (t *telemetry) dropped1(closed bool, n int64) {
	if t.dropped.Add(n) == n && !closed {
		t.srv.event(slog.LevelWarn, fmt.Sprintf("telemetry: the buffer of %d records is full; records are dropped (and counted) until the sink catches up", t.cfg.Buffer))
	}
}

// telBatch is how many records waiting make the exporter export at once
// when it wakes; with fewer, it lingers captureLinger first. It then takes
// every record waiting (at most Buffer), so the replica holds at most 2 ×
// Buffer records.
const telBatch = 512

// export drains the buffer into the sink in batches, lingering for a
// batch to fill (see captureLinger) unless helpers have made one already
// (help). The records are made here, or by helpers, off the request path:
// their strings are substrings of one copy of the entries they came in.
// A JSON-lines sink gets them encoded, in one write.
func (t *telemetry) export() {
	defer close(t.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for t.q.wait() {
		gather(t.q.len(), telBatch, timer, t.closing, t.ready)
		t.fmu.Lock()
		entries, n := t.q.take()
		if !t.srv.child.ship(childTelemetry, entries, n) {
			t.format(entries)
		}
		// What helpers made is sent here even when the batch went to the
		// capture writer process.
		t.send()
		t.fmu.Unlock()
	}
}

// send hands the records made (or encoded) to the sink and counts them.
// The caller holds t.fmu.
func (t *telemetry) send() {
	if n := t.pendingN; n > 0 {
		err := t.ctx.Err()
		if err == nil {
			if t.lines != nil {
				err = t.lines.writeEncoded(t.encoded)
			} else {
				err = t.cfg.Sink.Export(t.ctx, t.batch)
			}
		}
		switch {
		case err == nil:
			t.failures = 0
			t.sent.Add(n)
		case t.ctx.Err() != nil:
			t.dropped.Add(n)
		default:
			// One event per failure streak start, and then every
			// hundredth, so a dead sink does not flood the log. The
			// event is written before the records count as failed, so
			// whoever sees the count sees the event too.
			if t.failures%100 == 0 {
				t.srv.event(slog.LevelError, fmt.Sprintf("telemetry: %d record(s) could not be sent: %v", n, err))
			}
			t.failures++
			t.failed.Add(n)
		}
	}
	clear(t.batch) // let the strings go
	t.batch = t.batch[:0]
	if cap(t.encoded) > captureLogKeep {
		t.encoded = nil
	}
	t.encoded = t.encoded[:0]
	t.pendingN = 0
}

// format makes the records of entries and, for a JSON-lines sink, encodes
// them. The caller holds t.fmu.
func (t *telemetry) format(entries []byte) {
	if len(entries) == 0 {
		return
	}
	if t.lines == nil {
		k := len(t.batch)
		t.batch = t.records(t.batch, entries, false)
		t.pendingN += int64(len(t.batch) - k)
		return
	}
	// Encoded and forgotten before the caller (who holds t.fmu, without
	// which no one takes) lets another take reuse entries: no copy.
	t.batch = t.records(t.batch[:0], entries, true)
	for i := range t.batch {
		t.encoded = t.times.appendRecordJSON(t.encoded, &t.batch[i])
		t.encoded = append(t.encoded, '\n')
	}
	t.pendingN += int64(len(t.batch))
	clear(t.batch)
	t.batch = t.batch[:0]
}

// help makes the records waiting (and, for a JSON-lines sink, encodes
// them), when there are at least captureHelp of them and no one else is
// (see Server.helpCapture). The records wait for the exporter, which hands
// them to the sink (help never calls the sink); it is woken once
// captureWriteAt bytes are encoded, or telBatch records made for another
// sink.
func (t *telemetry) help() { t.q.help(&t.fmu, t.ready, t.formatHelped) }

// formatHelped formats the entries a helper took and tells whether enough
// is ready for the exporter to write. The caller holds t.fmu.
func (t *telemetry) formatHelped(entries []byte) (full bool) {
	t.format(entries)
	return len(t.encoded) >= captureWriteAt || (t.lines == nil && len(t.batch) >= telBatch)
}

// telReader reads the fields of one telemetry log entry; s is the same
// bytes as b, as a string, from which the fields' strings are cut.
type telReader struct {
	b   []byte
	s   string
	off int
}

func (r *telReader) u64() uint64 {
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *telReader) time() time.Time {
	ns := int64(r.u64())
	utc := r.b[r.off] == 1
	r.off++
	t := time.Unix(0, ns)
	if utc {
		t = t.UTC()
	}
	return t
}

func (r *telReader) str() string {
	n, k := binary.Uvarint(r.b[r.off:])
	r.off += k
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// records appends the records of the log's entries to dst. The strings
// of the records share one copy of entries, or with view entries itself:
// then the caller is done with the records (and their strings) before
// entries can change, which the log does at the next take at the
// earliest.
func (t *telemetry) records(dst []TelemetryRecord, entries []byte, view bool) []TelemetryRecord {
	if len(entries) == 0 {
		return dst
	}
	r := telReader{b: entries}
	if view {
		r.s = unsafe.String(unsafe.SliceData(entries), len(entries))
	} else {
		r.s = string(entries)
	}
	for r.off < len(entries) {
		n := int(binary.BigEndian.Uint32(entries[r.off:]))
		r.off += 4
		end := r.off + n
		kind := entries[r.off]
		r.off++
		switch kind {
		case telEntryRequest:
			rec := TelemetryRecord{Kind: TelemetryRequest, Time: r.time(), Duration: time.Duration(r.u64()),
				Service: t.cfg.Service, Version: t.cfg.Version, Replica: t.cfg.Replica}
			rec.Status = int(int32(binary.BigEndian.Uint32(entries[r.off:])))
			r.off += 4
			rec.Method, rec.Path, rec.RequestID, rec.ClientRequestID, rec.TraceID, rec.ParentSpanID = r.str(), r.str(), r.str(), r.str(), r.str(), r.str()
			dst = append(dst, rec)
		case telEntryPrints:
			at := r.time()
			traceID, parentID := r.str(), r.str()
			dst, _ = t.appendPrints(dst, entries[r.off:end], r.s[r.off:end], at, traceID, parentID)
		}
		r.off = end
	}
	return dst
}

// close stops taking records, lets the sink send what is buffered for at
// most telemetryClose, and waits for the exporter.
func (t *telemetry) close() {
	if t.q.close() {
		close(t.closing)
	}
	tm := t.srv.cfg.Clock.AfterFunc(telemetryClose, func() {
		t.stop()
		t.srv.child.abort()
	})
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
		p := new(traceContext) // not &tc: tc would be on the heap for every request
		*p = tc
		s.tel.traces.Store(id, p)
		defer func() {
			s.tel.traces.CompareAndDelete(id, p)
			s.tel.traced.Add(-1)
		}()
	}
	defer func() {
		// Also when the handler panics to abort the response.
		s.tel.offerRequest(start, s.cfg.Clock.Since(start), rec.status, r.Method, r.URL.Path,
			first(w.Header()[hdrKeyMSRequestID]), clientRequestID(r), tc)
		*rec = statusRecorder{}
		recorderPool.Put(rec)
	}()
	s.serveScore(rec, r)
}

// MaxPrintFrame bounds one L frame from a worker: MaxPrintBytes
// characters of UTF-8 (4 bytes each at most) and the framing of the writes
// that printed them.
const MaxPrintFrame = 16 * MaxPrintBytes

// offerPrints takes an L frame (see pyhost/host.py: the request's ids, its
// start, then the texts written to stdout and stderr), which arrived at
// now, without ever waiting: its lines are counted, and the frame is copied
// to the buffer as it came (with its request's trace context), for the
// exporter to make one print record per line. A malformed frame counts as
// one failed record, after the lines before the fault.
func (t *telemetry) offerPrints(payload []byte, now time.Time) {
	lines := 0
	err := walkPrints(payload, func(byte, []byte, int) { lines++ }, func(uint64) { lines++ })
	if err != nil {
		t.recorded.Add(1)
		t.failed.Add(1)
		t.srv.event(slog.LevelError, "telemetry: malformed print record from a worker: "+err.Error())
	}
	if lines == 0 {
		return
	}
	t.recorded.Add(int64(lines))
	var tc traceContext
	if t.traced.Load() > 0 {
		if id, _, ok := cutShort(payload); ok {
			if v, ok := t.traces.Load(string(id)); ok {
				tc = *v.(*traceContext)
			}
		}
	}
	t.q.mu.Lock()
	ok, closed := t.q.roomLocked(lines, 64+len(payload))
	if ok {
		at := t.q.beginLocked()
		b := append(t.q.buf, telEntryPrints)
		b = telTime(b, now)
		b = telString(b, tc.traceID)
		b = telString(b, tc.parentID)
		t.q.buf = append(b, payload...)
		t.q.endLocked(at, lines)
	}
	t.q.mu.Unlock()
	if !ok {
		t.dropped1(closed, int64(lines))
	}
}

// walkPrints parses an L frame's payload and calls line for each line
// printed (without its newline; at is where it starts in p, or -1 when it
// is the join of several writes) and lost for the count of characters not
// kept. A malformed frame is an error, after the lines before the fault.
func walkPrints(p []byte, line func(stream byte, text []byte, at int), lost func(n uint64)) error {
	_, rest, ok1 := cutShort(p)
	_, rest, ok2 := cutShort(rest)
	if !ok1 || !ok2 || len(rest) < 8 {
		return errors.New("the request ids and start time are cut short")
	}
	rest = rest[8:]
	// The texts of consecutive parts of one stream are joined, then split
	// into lines; a last empty line (the text ended with a newline) is not
	// one. A run of one part is not copied.
	var (
		stream byte
		run    []byte // the run's text when it is one part
		runAt  int    // where it starts in p
		parts  int
		joined []byte
	)
	flush := func() {
		if parts == 0 {
			return
		}
		text, at := run, runAt
		if parts > 1 {
			text, at = joined, -1
		}
		parts = 0
		if len(text) == 0 {
			return
		}
		text = bytes.TrimSuffix(text, []byte("\n"))
		for {
			i := bytes.IndexByte(text, '\n')
			if i < 0 {
				line(stream, text, at)
				return
			}
			line(stream, text[:i], at)
			text = text[i+1:]
			if at >= 0 {
				at += i + 1
			}
		}
	}
	for len(rest) > 0 {
		if len(rest) < 5 {
			flush()
			return fmt.Errorf("a part's header is cut short (%d bytes)", len(rest))
		}
		kind, n := rest[0], binary.BigEndian.Uint32(rest[1:5])
		if uint64(n) > uint64(len(rest)-5) {
			flush()
			return fmt.Errorf("a part of %d bytes in the %d bytes left", n, len(rest)-5)
		}
		bodyAt := len(p) - len(rest) + 5
		body := rest[5 : 5+n]
		rest = rest[5+n:]
		switch kind {
		case 'o', 'e':
			if kind != stream {
				flush()
				stream = kind
			}
			switch parts {
			case 0:
				run, runAt = body, bodyAt
			case 1:
				joined = append(append(joined[:0], run...), body...)
			default:
				joined = append(joined, body...)
			}
			parts++
		case 'l':
			flush()
			stream = 0
			n, err := strconv.ParseUint(string(body), 10, 63)
			if err != nil {
				return fmt.Errorf("the count of characters lost %q is not a number", body)
			}
			lost(n)
		default:
			flush()
			return fmt.Errorf("a part of kind %q; want o (stdout), e (stderr) or l (characters lost)", kind)
		}
	}
	flush()
	return nil
}

// appendPrints appends the print records of an L frame's payload p (ps:
// the same bytes as a string, from which the strings are cut), which
// arrived at now, to dst.
func (t *telemetry) appendPrints(dst []TelemetryRecord, p []byte, ps string, now time.Time, traceID, parentID string) ([]TelemetryRecord, error) {
	id, rest, _ := cutShort(p)
	client, rest, _ := cutShort(rest)
	if len(rest) < 8 {
		return dst, errors.New("the request ids and start time are cut short")
	}
	ts := now
	if start := math.Float64frombits(binary.BigEndian.Uint64(rest)); start > 0 && start < 1e11 {
		ts = time.Unix(0, int64(start*1e9))
	}
	rec := TelemetryRecord{Kind: TelemetryPrint, Time: ts, Service: t.cfg.Service, Version: t.cfg.Version, Replica: t.cfg.Replica,
		RequestID: ps[1 : 1+len(id)], ClientRequestID: ps[2+len(id) : 2+len(id)+len(client)], TraceID: traceID, ParentSpanID: parentID}
	err := walkPrints(p, func(stream byte, text []byte, at int) {
		rec.Stream = "stdout"
		if stream == 'e' {
			rec.Stream = "stderr"
		}
		if at >= 0 {
			rec.Message = ps[at : at+len(text)]
		} else {
			rec.Message = string(text)
		}
		dst = append(dst, rec)
	}, func(n uint64) {
		rec.Stream, rec.Message = "stderr", fmt.Sprintf("[aksml: %d more characters printed during this request are in the replica log only]", n)
		dst = append(dst, rec)
	})
	return dst, err
}

// cutShort cuts a string of one length byte and that many bytes off p.
func cutShort(p []byte) (s, rest []byte, ok bool) {
	if len(p) < 1 || int(p[0]) > len(p)-1 {
		return nil, p, false
	}
	n := 1 + int(p[0]) // not 1+p[0], a byte that wraps at 255
	return p[1:n], p[n:], true
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

// writeEncoded writes lines encoded by appendRecordJSON.
func (j *JSONLinesSink) writeEncoded(b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return os.ErrClosed
	}
	_, err := j.f.Write(b)
	return err
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
