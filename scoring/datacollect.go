package scoring

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDataCollectionBuffer is how many collected records a replica holds
// while its store writes them.
const DefaultDataCollectionBuffer = 10000

// MaxDataCollectionRecord bounds one record (one collect() call) on the wire;
// score.py's collector refuses larger ones itself (4 MiB) and logs why.
const MaxDataCollectionRecord = 8 << 20

// dataCollectionClose bounds how long Close lets the store write what is
// still buffered; records left after it are counted as dropped.
const dataCollectionClose = 10 * time.Second

// DataCollection turns on azureml.monitoring.ModelDataCollector for a
// Python replica (v1's collect_model_data). Records are buffered in the
// replica (Buffer records at most; when the buffer is full, new records are
// dropped and counted) and written to Store by one background goroutine, so
// a slow store never slows run().
type DataCollection struct {
	// Store receives the records. Required.
	Store ModelDataStore
	// SubscriptionID, ResourceGroup and Workspace fill in the workspace of a
	// collector created with the default workspace ("default/default/
	// default"). Empty means "default".
	SubscriptionID, ResourceGroup, Workspace string
	// Service fills in webservice_name when score.py leaves it "default".
	// Empty means "default".
	Service string
	// ModelVersions maps a model name to the version deployed, filling in
	// model_version when score.py leaves it "default". Nil means the
	// versions found in Config.ModelDir's azureml-models layout
	// (azureml-models/NAME/VERSION, or NAME/VERSION below azureml-models).
	ModelVersions map[string]string
	// Buffer is the number of records held in the replica. Zero means
	// DefaultDataCollectionBuffer.
	Buffer int
}

// ModelDataStore is where collected model data goes. The local file store
// is LocalModelDataStore; a cloud store (a workspace's blob container, with
// Append as an append-blob block) implements the same interface.
type ModelDataStore interface {
	// Append adds rows (CSV lines) to the file at name, a slash-separated
	// path below the store's root (modeldata/...). header (one CSV line, or
	// nil) is written first when the file does not exist yet. rows is reused
	// after Append returns.
	Append(ctx context.Context, name string, header, rows []byte) error
}

// LocalModelDataStore writes model data under Root (a workspace
// directory), as files named by their path. It keeps the files it appends
// to open (at most maxLocalFiles, each until it has not been appended to
// for localFileIdle, or until Close), and before each Append checks that
// the file at the path is still the one it holds: a file removed or
// renamed meanwhile is opened anew, header first, as if it were new. Two
// stores (or processes) may append to files under one directory.
type LocalModelDataStore struct {
	Root string

	mu    sync.Mutex
	files map[string]*localFile
	// sweep closes the files left idle; set while files are open.
	sweep *time.Timer
}

// localFile is a file a LocalModelDataStore holds open.
type localFile struct {
	f *os.File
	// info is the file's as opened, to tell that the path still names it.
	info os.FileInfo
	used time.Time
}

// maxLocalFiles bounds the files a LocalModelDataStore holds open; the one
// appended to least recently is closed for a new one.
const maxLocalFiles = 64

// localFileIdle is how long a LocalModelDataStore holds a file open that
// is not appended to (a replica's files of the day before, a replica
// gone).
const localFileIdle = 5 * time.Second

// Append implements ModelDataStore.
func (l *LocalModelDataStore) Append(ctx context.Context, name string, header, rows []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := filepath.Join(l.Root, filepath.FromSlash(name))
	// One lock per store: two replicas of a service share its files, and
	// the header must be written once.
	l.mu.Lock()
	defer l.mu.Unlock()
	// The file at p now: the one held open, a new one or none.
	st, err := os.Stat(p)
	lf := l.files[name]
	if lf != nil && (err != nil || !os.SameFile(st, lf.info)) {
		l.drop(name, lf)
		lf = nil
	}
	if lf == nil {
		if lf, err = l.open(name, p); err != nil {
			return err
		}
		st = lf.info
	}
	lf.used = time.Now()
	if st.Size() == 0 && len(header) > 0 {
		_, err = lf.f.Write(header)
	}
	if err == nil {
		_, err = lf.f.Write(rows)
	}
	if err != nil {
		// Opened anew for the next Append.
		l.drop(name, lf)
	}
	return err
}

// open opens the file name (at p) and holds it open. The caller holds l.mu.
func (l *LocalModelDataStore) open(name, p string) (*localFile, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if l.files == nil {
		l.files = map[string]*localFile{}
	}
	if len(l.files) >= maxLocalFiles {
		var oldest string
		for n, o := range l.files {
			if oldest == "" || o.used.Before(l.files[oldest].used) {
				oldest = n
			}
		}
		l.drop(oldest, l.files[oldest])
	}
	lf := &localFile{f: f, info: info}
	l.files[name] = lf
	if l.sweep == nil {
		l.sweep = time.AfterFunc(localFileIdle, l.closeIdle)
	}
	return lf, nil
}

// drop closes a file held open. The caller holds l.mu.
func (l *LocalModelDataStore) drop(name string, lf *localFile) {
	lf.f.Close()
	delete(l.files, name)
}

// closeIdle closes the files not appended to for localFileIdle, and comes
// back while files are open.
func (l *LocalModelDataStore) closeIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sweep == nil {
		return // closed meanwhile
	}
	next := localFileIdle
	for name, lf := range l.files {
		if idle := time.Since(lf.used); idle >= localFileIdle {
			l.drop(name, lf)
		} else {
			next = min(next, localFileIdle-idle)
		}
	}
	if len(l.files) == 0 {
		l.sweep = nil
		return
	}
	l.sweep.Reset(next)
}

// Close closes the files the store holds open. The store may still be
// used: an Append opens its file again.
func (l *LocalModelDataStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sweep != nil {
		l.sweep.Stop()
		l.sweep = nil
	}
	var errs []error
	for name, lf := range l.files {
		errs = append(errs, lf.f.Close())
		delete(l.files, name)
	}
	return errors.Join(errs...)
}

// DataCollectionStats counts a replica's collected records: Collected
// reached the server, Written are in the store, Dropped were refused because
// the buffer was full (or left in it at Close), Failed were rejected (a bad
// path segment) or failed to write. Once the buffer is empty, Written +
// Dropped + Failed == Collected.
type DataCollectionStats struct {
	Collected, Written, Dropped, Failed int64
}

// DataCollectionStats returns the replica's data collection counters (all
// zero when collection is off).
func (s *Server) DataCollectionStats() DataCollectionStats {
	if s.dc == nil {
		return DataCollectionStats{}
	}
	return s.dc.stats()
}

// dcRecord is a record ready for the store: its file, the file's CSV
// header and the record's values (marshal data, see appendDCRows), written
// as CSV rows by the writer.
type dcRecord struct {
	name   string
	header []byte
	values []byte
}

// collector buffers a replica's records and writes them in the background.
type collector struct {
	cfg  *DataCollection
	srv  *Server
	q    *captureLog
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}
	// closing is closed when the replica closes: the writer stops
	// lingering.
	closing chan struct{}

	// fmu is held by whoever formats records: the writer, or a
	// connection helping (help). It guards what follows. ready wakes the
	// writer when a file's rows reach captureWriteAt.
	fmu   sync.Mutex
	ready chan struct{}
	dec   pyDecoder
	// files are the rows formatted and not yet appended, by file name, in
	// order; hot are the files of the last two records, looked at before
	// the map (a replica's collectors take turns: inputs, predictions);
	// spare are rows buffers to reuse.
	files map[string]*dcPending
	order []*dcPending
	hot   [2]*dcPending
	spare [][]byte
	// targets, recent and next are the formatter's.
	targets map[string]*dcTarget
	// recent are the targets of the last records, looked at before the
	// map (a replica's collectors take turns: inputs, predictions).
	recent [2]*dcTarget
	next   int // the entry of recent replaced next

	collected, written, dropped, failed atomic.Int64
}

// newCollector makes a replica's collector; its writer is started apart
// (go c.write()): a capture writer process has none.
func newCollector(s *Server, cfg *DataCollection) *collector {
	if cfg.ModelVersions == nil {
		cfg.ModelVersions = modelVersionsOf(s.cfg.ModelDir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cfg: cfg, srv: s, q: newCaptureLog(cfg.Buffer), ctx: ctx, targets: map[string]*dcTarget{}, files: map[string]*dcPending{}, ready: make(chan struct{}, 1), stop: cancel,
		done: make(chan struct{}), closing: make(chan struct{})}
	return c
}

func (c *collector) stats() DataCollectionStats {
	return DataCollectionStats{Collected: c.collected.Load(), Written: c.written.Load(),
		Dropped: c.dropped.Load(), Failed: c.failed.Load()}
}

// dcBatch is how many records waiting make the writer write at once when
// it wakes; with fewer, it lingers captureLinger first. It then takes every
// record waiting (at most Buffer), so the replica holds at most 2 × Buffer
// records: the buffer and one batch in the store's hands.
const dcBatch = 256

// write drains the buffer into the store, grouping what is waiting by file
// and lingering for a batch to fill (see captureLinger) unless helpers have
// formatted enough already (help): one Append per file and batch. The
// records are parsed and their rows formatted here, or by helpers, off the
// request path.
func (c *collector) write() {
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for c.q.wait() {
		gather(c.q.len(), dcBatch, timer, c.closing, c.ready)
		c.fmu.Lock()
		entries, n := c.q.take()
		if !c.srv.child.ship(childData, entries, n) {
			c.format(entries)
		}
		// What helpers formatted is written here even when the batch went
		// to the capture writer process.
		c.flush()
		c.fmu.Unlock()
	}
}

// dcPending is one file's rows formatted and not yet appended.
type dcPending struct {
	name   string
	header []byte
	rows   []byte
	n      int64
}

// help formats the records waiting, when there are at least captureHelp
// of them and no one else is formatting (see Server.helpCapture). The rows
// wait for the writer, which appends them to the store (help never calls
// the store); it is woken once a file's rows reach captureWriteAt.
func (c *collector) help() { c.q.help(&c.fmu, c.ready, c.formatHelped) }

// formatHelped formats the entries a helper took and tells whether a
// file's rows reach captureWriteAt. The caller holds c.fmu.
func (c *collector) formatHelped(entries []byte) (full bool) {
	c.format(entries)
	for _, p := range c.order {
		if len(p.rows) >= captureWriteAt {
			return true
		}
	}
	return false
}

// format parses the records of entries (as take returns them) and adds
// their rows to their files' pending rows. The caller holds c.fmu.
func (c *collector) format(entries []byte) {
	for len(entries) > 0 {
		var e []byte
		e, entries = nextEntry(entries)
		r, err := c.record(e[8:], int64(binary.BigEndian.Uint64(e)))
		if err != nil {
			c.srv.event(slog.LevelError, "data collection: record refused: "+err.Error())
			c.failed.Add(1)
			continue
		}
		var p *dcPending
		switch {
		case c.hot[0] != nil && c.hot[0].name == r.name:
			p = c.hot[0]
		case c.hot[1] != nil && c.hot[1].name == r.name:
			p = c.hot[1]
		default:
			p = c.files[r.name]
			if p == nil {
				p = &dcPending{name: r.name, header: r.header}
				if k := len(c.spare); k > 0 {
					p.rows, c.spare = c.spare[k-1], c.spare[:k-1]
				}
				c.files[r.name] = p
				c.order = append(c.order, p)
			}
			c.hot[0], c.hot[1] = p, c.hot[0]
		}
		rows, err := c.dec.appendRows(p.rows, r.values)
		if err != nil {
			c.srv.event(slog.LevelError, "data collection: record refused: "+err.Error())
			c.failed.Add(1)
			continue
		}
		p.rows = rows
		p.n++
	}
}

// flush appends each file's pending rows to the store: one Append per
// file. The caller holds c.fmu.
func (c *collector) flush() {
	for _, p := range c.order {
		if p.n == 0 {
			continue
		}
		if c.ctx.Err() != nil {
			c.dropped.Add(p.n)
			continue
		}
		if err := c.cfg.Store.Append(c.ctx, p.name, p.header, p.rows); err != nil {
			if c.ctx.Err() != nil {
				c.dropped.Add(p.n)
				continue
			}
			c.srv.event(slog.LevelError, fmt.Sprintf("data collection: %d record(s) could not be written to %s: %v", p.n, p.name, err))
			c.failed.Add(p.n)
			continue
		}
		c.written.Add(p.n)
	}
	// The rows buffers are kept for the next files (the store does not
	// keep rows after Append), unless a burst grew one huge.
	for _, p := range c.order {
		if cap(p.rows) <= captureLogKeep {
			c.spare = append(c.spare, p.rows[:0])
		}
	}
	clear(c.files)
	clear(c.order)
	c.order = c.order[:0]
	c.hot = [2]*dcPending{}
}

// offer takes the D frames among frames from a worker, which arrived at now,
// without ever waiting: their payloads are copied to the buffer as they
// came, under one lock, for the writer to parse.
func (c *collector) offer(frames []sideFrame, now time.Time) {
	sec := now.Unix()
	var dropped int64
	closed := false
	c.q.mu.Lock()
	for _, f := range frames {
		if f.kind != kindRecord {
			continue
		}
		c.collected.Add(1)
		ok, cl := c.q.roomLocked(1, 12+len(f.payload))
		if !ok {
			dropped++
			closed = cl
			continue
		}
		at := c.q.beginLocked()
		c.q.buf = binary.BigEndian.AppendUint64(c.q.buf, uint64(sec))
		c.q.buf = append(c.q.buf, f.payload...)
		c.q.endLocked(at, 1)
	}
	c.q.mu.Unlock()
	if dropped > 0 && c.dropped.Add(dropped) == dropped && !closed {
		c.srv.event(slog.LevelWarn, fmt.Sprintf("data collection: the buffer of %d records is full; records are dropped (and counted) until the store catches up", c.cfg.Buffer))
	}
}

// dcMeta is the metadata of a record from ModelDataCollector. Version,
// Collection, Workspace and Service are left out (empty) when "default".
// Features are the collector's feature names, absent (nil) when it has
// none: its files then have no header row; else the header is the two
// correlation columns and the features.
type dcMeta struct {
	Model       string   `json:"model"`
	Version     string   `json:"version"`
	Designation string   `json:"designation"`
	Collection  string   `json:"collection"`
	Workspace   string   `json:"workspace"`
	Service     string   `json:"service"`
	Features    []string `json:"features"`
}

// dcTarget is where the records of one collector go: the part of the path
// before the date, the file name and the CSV header (nil for none), or why
// its records are refused.
type dcTarget struct {
	meta         string // the metadata parsed
	prefix, file string
	header       []byte
	err          error
	// name is the file of the day (UTC) that starts at from (Unix
	// seconds); the writer's.
	name string
	from int64
}

// maxTargets bounds the cache of parsed collector metadata.
const maxTargets = 1024

// record builds the store record of a D frame payload that arrived at now
// (Unix seconds): its file is modeldata/<subscription>/<resource group>/
// <workspace>/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/
// <collection>.csv, the date that of the server's clock (UTC) when the
// record arrived. A collector sends the same metadata with every record:
// it is parsed once. The record's values are those of payload. Only the
// writer calls it.
func (c *collector) record(payload []byte, now int64) (dcRecord, error) {
	if len(payload) < 4 {
		return dcRecord{}, fmt.Errorf("%w: payload of %d bytes has no metadata length", errProtocol, len(payload))
	}
	n := binary.BigEndian.Uint32(payload)
	if uint64(n) > uint64(len(payload)-4) {
		return dcRecord{}, fmt.Errorf("%w: metadata of %d bytes in a %d-byte payload", errProtocol, n, len(payload))
	}
	meta, values := payload[4:4+n], payload[4+n:]
	var tg *dcTarget
	switch r := c.recent; {
	case r[0] != nil && r[0].meta == string(meta):
		tg = r[0]
	case r[1] != nil && r[1].meta == string(meta):
		tg = r[1]
	default:
		tg = c.targets[string(meta)]
		if tg == nil {
			tg = c.target(meta)
			tg.meta = string(meta)
			if len(c.targets) >= maxTargets {
				clear(c.targets)
			}
			c.targets[tg.meta] = tg
		}
		c.recent[c.next] = tg
		c.next ^= 1
	}
	if tg.err != nil {
		return dcRecord{}, tg.err
	}
	// The file's name changes with the day (UTC): made once a day.
	if now < tg.from || now >= tg.from+secondsPerDay || tg.name == "" {
		tg.from = now - ((now%secondsPerDay)+secondsPerDay)%secondsPerDay
		tg.name = tg.prefix + "/" + time.Unix(tg.from, 0).UTC().Format("2006/01/02") + "/" + tg.file
	}
	return dcRecord{name: tg.name, header: tg.header, values: values}, nil
}

const secondsPerDay = 24 * 60 * 60

// target parses a collector's metadata.
func (c *collector) target(meta []byte) *dcTarget {
	var m dcMeta
	if err := json.Unmarshal(meta, &m); err != nil {
		return &dcTarget{err: fmt.Errorf("%w: metadata: %v", errProtocol, err)}
	}
	ws := strings.Split(m.Workspace, "/")
	if m.Workspace == "default/default/default" || m.Workspace == "" {
		ws = []string{orDefault(c.cfg.SubscriptionID), orDefault(c.cfg.ResourceGroup), orDefault(c.cfg.Workspace)}
	}
	if len(ws) != 3 {
		return &dcTarget{err: fmt.Errorf("workspace %q: want {subscription_id}/{resource_group}/{workspace_name}", m.Workspace)}
	}
	service := m.Service
	if service == "" || service == "default" {
		service = orDefault(c.cfg.Service)
	}
	version := m.Version
	if version == "" || version == "default" {
		if v := c.cfg.ModelVersions[m.Model]; v != "" {
			version = v
		} else {
			version = "default"
		}
	}
	if m.Collection == "" {
		m.Collection = "default"
	}
	segs := []struct{ field, v string }{
		{"subscription_id", ws[0]}, {"resource_group", ws[1]}, {"workspace_name", ws[2]},
		{"webservice_name", service}, {"model_name", m.Model}, {"model_version", version},
		{"designation", m.Designation}, {"collection_name", m.Collection},
	}
	for _, s := range segs {
		if err := checkSegment(s.v); err != nil {
			return &dcTarget{err: fmt.Errorf("%s %q %v", s.field, s.v, err)}
		}
	}
	tg := &dcTarget{prefix: path.Join("modeldata", ws[0], ws[1], ws[2], service, m.Model, version, m.Designation),
		file: dcFileName(m.Collection)}
	if m.Features != nil {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		_ = w.Write(append([]string{dcTimestampColumn, dcCorrelationColumn}, m.Features...))
		w.Flush()
		tg.header = bytes.ReplaceAll(b.Bytes(), []byte("\r\n"), []byte("\n"))
	}
	return tg
}

// dcFileName is the CSV file of a collection: data.csv for the default
// collection (as v1's how-to shows), else <collection_name>.csv.
func dcFileName(collection string) string {
	if collection == "" || collection == "default" {
		return "data.csv"
	}
	return collection + ".csv"
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// checkSegment accepts one path segment of the modeldata layout.
func checkSegment(s string) error {
	switch {
	case s == "":
		return errors.New("is empty; it must be a non-empty path segment")
	case s == "." || s == "..":
		return errors.New("is not a valid path segment")
	case strings.ContainsAny(s, "/\\\x00"):
		return errors.New("contains a slash, backslash or NUL; it must be one path segment")
	case len(s) > 255:
		return fmt.Errorf("is %d bytes long; at most 255 are allowed", len(s))
	}
	return nil
}

// readSide takes what one worker sends on its side channel (fd 5) until it
// closes: ModelDataCollector records (D frames) collected outside a request
// (a request's records come with its reply). A malformed frame is logged
// and ends the reading (the worker's collector then reports the closed
// channel and collects no more).
func (s *Server) readSide(r io.ReadCloser, slot int) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [frameHeader]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if err := s.checkSide(hdr[4], size); err != nil {
			s.event(slog.LevelError, fmt.Sprintf("worker %d sent a malformed record (%v); its data collection and telemetry are stopped", slot, err))
			return
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		s.takeSide(hdr[4], payload)
	}
}

// isSide tells the kinds of frames that carry records (D) and telemetry
// (L), before a reply or on the side channel.
func isSide(kind byte) bool { return kind == kindRecord || kind == kindPrints }

// checkSide accepts the header of a D or L frame of size bytes.
func (s *Server) checkSide(kind byte, size uint32) error {
	switch {
	case kind == kindRecord && s.dc != nil && size <= MaxDataCollectionRecord:
	case kind == kindPrints && s.tel != nil && size <= MaxPrintFrame:
	default:
		return fmt.Errorf("%w: kind %q, %d bytes; records of at most %d bytes with data collection on, printed lines of at most %d with telemetry on",
			errProtocol, kind, size, MaxDataCollectionRecord, MaxPrintFrame)
	}
	return nil
}

// takeSide hands a D or L frame (checked by checkSide) to the collector or
// telemetry; payload is not kept.
func (s *Server) takeSide(kind byte, payload []byte) {
	s.takeSides([]sideFrame{{kind, payload}})
}

// close stops taking records, lets the store write what is buffered for at
// most dataCollectionClose, and waits for the writer.
func (c *collector) close() {
	if c.q.close() {
		close(c.closing)
	}
	t := c.srv.cfg.Clock.AfterFunc(dataCollectionClose, func() {
		c.stop()
		c.srv.child.abort()
	})
	<-c.done
	t.Stop()
	c.stop()
	c.closeStore()
}

// closeStore closes the files the replica wrote: they are closed with it
// (a store shared with other replicas opens theirs again).
func (c *collector) closeStore() {
	if l, ok := c.cfg.Store.(*LocalModelDataStore); ok {
		if err := l.Close(); err != nil {
			c.srv.event(slog.LevelError, "data collection: closing the store's files: "+err.Error())
		}
	}
}

// validate checks a DataCollection (nil is valid: collection off).
func (d *DataCollection) validate() error {
	if d == nil {
		return nil
	}
	var errs []error
	if d.Store == nil {
		errs = append(errs, errors.New("DataCollection.Store: is nil; a store is required when data collection is on"))
	}
	if d.Buffer < 0 {
		errs = append(errs, fmt.Errorf("DataCollection.Buffer: %d is negative; it must be 0 (the default, %d) or more", d.Buffer, DefaultDataCollectionBuffer))
	}
	for _, f := range []struct{ n, v string }{{"SubscriptionID", d.SubscriptionID}, {"ResourceGroup", d.ResourceGroup}, {"Workspace", d.Workspace}, {"Service", d.Service}} {
		if f.v != "" {
			if err := checkSegment(f.v); err != nil {
				errs = append(errs, fmt.Errorf("DataCollection.%s: %q %v", f.n, f.v, err))
			}
		}
	}
	return errors.Join(errs...)
}

// modelVersionsOf reads the model versions from an AZUREML_MODEL_DIR laid
// out as in Azure: <root>/azureml-models/NAME/VERSION for one model, or
// <root>/azureml-models with NAME/VERSION below it. A model with more than
// one version directory is left out.
func modelVersionsOf(dir string) map[string]string {
	if dir == "" {
		return nil
	}
	dir = filepath.Clean(dir)
	if filepath.Base(filepath.Dir(filepath.Dir(dir))) == "azureml-models" {
		return map[string]string{filepath.Base(filepath.Dir(dir)): filepath.Base(dir)}
	}
	if filepath.Base(dir) != "azureml-models" {
		return nil
	}
	out := map[string]string{}
	models, _ := os.ReadDir(dir)
	for _, m := range models {
		if !m.IsDir() {
			continue
		}
		vs, _ := os.ReadDir(filepath.Join(dir, m.Name()))
		var dirs []string
		for _, v := range vs {
			if v.IsDir() {
				dirs = append(dirs, v.Name())
			}
		}
		if len(dirs) == 1 {
			out[m.Name()] = dirs[0]
		}
	}
	return out
}

// The correlation columns v1's collector put first in every row (and in
// the header): the scoring timestamp and the correlation id.
const (
	dcTimestampColumn   = "$aml_dc_scoring_timestamp"
	dcCorrelationColumn = "$aml_dc_correlation_id"
)
