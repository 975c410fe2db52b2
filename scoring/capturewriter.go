package scoring

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// The capture writer process.
//
// aksml-score hosting a Python entry script hands the formatting and
// writing of its model data records and telemetry records to a process of
// its own: the same program, started again with the same flags and
// environment, which runs at the kernel's idle priority (SCHED_IDLE). The
// replica's request path (one Go processor, the Python workers) then never
// waits for a core behind the writers: the kernel runs them only on a core
// no request needs. The replica still buffers the records as before (the
// same bounds, drops counted at once) and ships each batch its writers take
// to the process over a pipe, as the bytes they were buffered in; the
// process formats them (CSV rows, JSON lines, OTLP), writes them to the same
// store and sinks, and reports what it wrote, failed or dropped, which the
// replica counts as its own. When the process falls behind (its pipe has
// no room for a batch: on a replica whose cores are all busy the kernel
// runs it seldom), the replica writes that batch itself, at the normal
// priority (see captureChild.ship).
//
// When the process cannot start, or exits, the replica says so in its log
// and writes the records itself from then on, as a server without the
// process does; the records of the batches the process had taken and not
// reported are counted as failed (they may or may not have been written:
// they are never written twice). AKSML_CAPTURE_WRITER=in-process keeps the
// writers in the replica.

// EnvCaptureWriter chooses where aksml-score formats and writes its model
// data and telemetry records: "process" (the default: a process of its own
// at idle priority) or "in-process".
const EnvCaptureWriter = "AKSML_CAPTURE_WRITER"

// EnvCaptureWriterProcess is set to "1" in the environment of a capture
// writer process: the program (os.Executable) started again with the
// replica's arguments. Main and MainWith then run the process instead of a
// server, so a program that calls them only under some condition (as
// kube/local does, for its re-executed containers) must also call them when
// this variable is "1".
const EnvCaptureWriterProcess = "AKSML_CAPTURE_WRITER_PROCESS"

// The kinds of a batch shipped to the process, and of its reports.
const (
	childData      = 'D'
	childTelemetry = 'T'
)

// childHeader is a batch's header: its kind, its records (uint32) and its
// bytes (uint32), big-endian; the entries follow as the capture log holds
// them. A report is its kind, then what was written (sent), failed and
// dropped, uint32 each.
const (
	childHeader = 9
	childReport = 13
)

// childPipeSize is the pipe buffer asked for the batches: about a second of
// a busy replica's records, so the writers rarely wait for the process.
const childPipeSize = 1 << 20

// captureProcess says how a server starts its capture writer process: the
// program, its arguments and environment (the process adds the marker).
type captureProcess struct {
	path string
	args []string
	env  []string
}

// captureChild is the replica's side of its capture writer process. A nil
// *captureChild is a replica without one: ship declines and alive is false.
type captureChild struct {
	srv *Server
	cmd *exec.Cmd
	w   *os.File // batches
	r   *os.File // reports

	// mu orders the two writers' batches on the pipe, and guards shipped
	// and the accounting when the process ends.
	mu      sync.Mutex
	dead    atomic.Bool
	shipped [2]int64 // records shipped, by kind (data, telemetry)
	// reported are the records the process accounted for, by kind.
	reported [2]atomic.Int64
	done     chan struct{} // the report reader ended
	closed   bool
	// pipeSize is the batches pipe's buffer; overflowed counts the
	// batches the replica wrote itself because the pipe had no room.
	pipeSize   int
	overflowed atomic.Int64
	// behind is set while the pipe has no room: the replica's helpers
	// then format again (see Server.helpCapture).
	behind atomic.Bool
}

func childIndex(kind byte) int {
	if kind == childTelemetry {
		return 1
	}
	return 0
}

// startCaptureChild starts the capture writer process of s. On failure it
// returns the error and the server writes its records itself.
func startCaptureChild(s *Server, p *captureProcess) (*captureChild, error) {
	br, bw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		br.Close()
		bw.Close()
		return nil, err
	}
	pipeSize := setPipeSize(bw, childPipeSize)
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(append([]string(nil), p.env...), EnvCaptureWriterProcess+"=1", "GOMAXPROCS=1")
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{br, rw} // fd 3: batches in; fd 4: reports out
	err = cmd.Start()
	br.Close()
	rw.Close()
	if err != nil {
		bw.Close()
		rr.Close()
		return nil, err
	}
	// The caller starts readReports once the server's collector and
	// telemetry are set.
	return &captureChild{srv: s, cmd: cmd, w: bw, r: rr, done: make(chan struct{}), pipeSize: pipeSize}, nil
}

// alive tells whether the process takes batches.
func (c *captureChild) alive() bool { return c != nil && !c.dead.Load() }

// keepsUp tells whether the process takes the batches: it is alive and
// its pipe had room for the last one.
func (c *captureChild) keepsUp() bool { return c.alive() && !c.behind.Load() }

// ship hands a batch of entries (records of them, as a capture log's take
// returns them) to the process; false when there is no process, or no
// room for the batch in its pipe: the caller formats and writes them
// itself.
//
// The process runs at idle priority: on a replica whose cores are all
// busy the kernel runs it seldom, and its pipe fills. The replica then
// writes the batches itself, at the normal priority, as a replica without
// the process does, rather than wait for the process or drop them: records
// are dropped only when the replica's own writers do not keep up either.
// So the write below does not wait (only the replica writes to the pipe,
// and the process only drains it).
func (c *captureChild) ship(kind byte, entries []byte, records int) bool {
	if !c.alive() {
		return false
	}
	if records == 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead.Load() || c.closed {
		return false
	}
	// Half the pipe at most: the kernel keeps a pipe's bytes in pages, and
	// a write that does not fill its page leaves the rest unused for
	// the next one.
	if pipeQueued(c.w)+childHeader+len(entries) > c.pipeSize/2 {
		c.overflowed.Add(1)
		c.behind.Store(true)
		return false
	}
	c.behind.Store(false)
	var hdr [childHeader]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(records))
	binary.BigEndian.PutUint32(hdr[5:], uint32(len(entries)))
	// Counted before the write: the process may report them before the
	// write returns.
	i := childIndex(kind)
	c.shipped[i] += int64(records)
	if _, err := c.w.Write(hdr[:]); err == nil {
		if _, err = c.w.Write(entries); err == nil {
			return true
		}
	}
	// The process did not take the whole batch (it exited): it reads
	// whole batches only, so the caller writes this one. From now on the
	// replica writes its records itself.
	c.shipped[i] -= int64(records)
	c.endLocked("it stopped reading")
	return false
}

// abort makes a write waiting for the process give up (close's time is
// over): the batch is then the caller's.
func (c *captureChild) abort() {
	if c != nil {
		_ = c.w.SetWriteDeadline(time.Now())
	}
}

// readReports counts what the process reports, until it exits.
func (c *captureChild) readReports() {
	defer close(c.done)
	br := bufio.NewReader(c.r)
	var rep [childReport]byte
	var err error
	for {
		if _, err = io.ReadFull(br, rep[:]); err != nil {
			break
		}
		if rep[0] != childData && rep[0] != childTelemetry {
			err = fmt.Errorf("a report of unknown kind %q", rep[0])
			break
		}
		ok := int64(binary.BigEndian.Uint32(rep[1:]))
		failed := int64(binary.BigEndian.Uint32(rep[5:]))
		dropped := int64(binary.BigEndian.Uint32(rep[9:]))
		if w, f, d := c.counters(rep[0]); w != nil {
			w.Add(ok)
			f.Add(failed)
			d.Add(dropped)
		}
		c.reported[childIndex(rep[0])].Add(ok + failed + dropped)
	}
	c.r.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	why := "it exited"
	if err != nil && !errors.Is(err, io.EOF) {
		why = err.Error()
	}
	c.endLocked(why)
}

// counters are the server's counters of kind's records: written (sent),
// failed and dropped; nil when that feature is off.
func (c *captureChild) counters(kind byte) (ok, failed, dropped *atomic.Int64) {
	switch {
	case kind == childData && c.srv.dc != nil:
		return &c.srv.dc.written, &c.srv.dc.failed, &c.srv.dc.dropped
	case kind == childTelemetry && c.srv.tel != nil:
		return &c.srv.tel.sent, &c.srv.tel.failed, &c.srv.tel.dropped
	}
	return nil, nil, nil
}

// endLocked marks the process gone: the records it took and did not
// report count as failed, and the replica writes its records itself from
// now on. The caller holds c.mu.
func (c *captureChild) endLocked(why string) {
	if c.dead.Swap(true) {
		return
	}
	_ = c.w.Close()
	if !c.closed {
		// It may still run (it stopped reading): it writes nothing more.
		_ = c.cmd.Process.Kill()
	}
	lost := [2]int64{c.shipped[0] - c.reported[0].Load(), c.shipped[1] - c.reported[1].Load()}
	// At close (the process was given its time and killed) they are
	// dropped, as a replica's own writers drop what is left then.
	for i, kind := range [2]byte{childData, childTelemetry} {
		if _, f, d := c.counters(kind); f != nil && lost[i] > 0 {
			if c.closed {
				d.Add(lost[i])
			} else {
				f.Add(lost[i])
			}
		}
	}
	// The reports of what is counted here are not awaited any more.
	c.reported[0].Add(lost[0])
	c.reported[1].Add(lost[1])
	if c.closed {
		return
	}
	msg := "capture writer process: " + why + "; the replica writes its model data and telemetry records itself from now on"
	if lost[0]+lost[1] > 0 {
		msg += fmt.Sprintf(" (%d record(s) the process had taken are counted as failed)", lost[0]+lost[1])
	}
	c.srv.event(slog.LevelError, msg)
}

// close ends the process once the writers have shipped their last
// batches: back at the normal priority (nothing else would make it finish
// on a replica whose cores stay busy), it writes what it took and exits;
// after closeWait it is killed, and what it had not reported counts as
// dropped.
func (c *captureChild) close(closeWait time.Duration) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	if !c.dead.Load() {
		hurry(c.cmd.Process.Pid)
		_ = c.w.Close() // the process sees the end of its batches
	}
	c.mu.Unlock()
	t := time.AfterFunc(closeWait, func() { _ = c.cmd.Process.Kill() })
	<-c.done
	t.Stop()
	_ = c.cmd.Wait()
}

// ---------------------------------------------------------------- the process

// isCaptureWriterProcess tells whether this program was started as a
// capture writer process (MainWith then runs runCaptureWriter).
func isCaptureWriterProcess(getenv func(string) string) bool {
	return getenv(EnvCaptureWriterProcess) == "1"
}

// runCaptureWriter is the capture writer process: it builds the replica's
// data collection and telemetry from the same flags and environment,
// formats and writes the batches it reads on fd 3 and reports on fd 4,
// until the replica closes the pipe.
func runCaptureWriter(args []string, getenv func(string) string, opts Options, stdout, stderr io.Writer) error {
	setIdlePriority(true)
	in := os.NewFile(3, "batches")
	out := os.NewFile(4, "reports")
	if in == nil || out == nil {
		return errors.New("capture writer process: file descriptors 3 and 4 are not open (it is started by aksml-score, not by hand)")
	}
	defer in.Close()
	defer out.Close()
	// The server printed the warnings already (io.Discard): the same
	// flags and environment give the same ones.
	st, err := parseCLI(args, getenv, nil, io.Discard)
	if err != nil {
		return err
	}
	st.cfg.LogOutput = stdout
	st.cfg.Logger = slog.New(slog.DiscardHandler)
	closeSinks, err := attachTelemetrySinks(context.Background(), st, getenv, opts, io.Discard, stderr)
	if err != nil {
		return err
	}
	defer closeSinks()
	cfg, err := st.cfg.withDefaults()
	if err != nil {
		return err
	}
	s := &Server{cfg: cfg, logs: newLogBuffer(cfg.LogLines, cfg.LogOutput)}
	var dc *collector
	var tel *telemetry
	if cfg.DataCollection != nil {
		dc = newCollector(s, cfg.DataCollection)
		defer dc.closeStore()
	}
	if cfg.Telemetry != nil {
		tel = newTelemetry(s, cfg.Telemetry)
	}
	return serveCaptureWriter(in, out, dc, tel)
}

// batchWriter formats and writes a batch of entries a replica shipped
// (as its capture log held them), and tells how many of its records were
// written (sent), failed and dropped.
type batchWriter interface {
	writeBatch(entries []byte) (ok, failed, dropped int64)
}

func (c *collector) writeBatch(entries []byte) (ok, failed, dropped int64) {
	b := c.stats()
	c.fmu.Lock()
	c.format(entries)
	c.flush()
	c.fmu.Unlock()
	a := c.stats()
	return a.Written - b.Written, a.Failed - b.Failed, a.Dropped - b.Dropped
}

func (t *telemetry) writeBatch(entries []byte) (ok, failed, dropped int64) {
	b := t.stats()
	t.fmu.Lock()
	t.format(entries)
	t.send()
	t.fmu.Unlock()
	a := t.stats()
	return a.Sent - b.Sent, a.Failed - b.Failed, a.Dropped - b.Dropped
}

// serveCaptureWriter formats and writes the batches read from in with dc
// and tel, and reports each batch's outcome on out. The end of in ends it
// (a batch cut short is not written: the replica counted it as failed).
func serveCaptureWriter(in io.Reader, out io.Writer, dc *collector, tel *telemetry) error {
	br := bufio.NewReaderSize(in, 64<<10)
	var hdr [childHeader]byte
	var entries []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("capture writer process: reading a batch: %w", err)
		}
		size := binary.BigEndian.Uint32(hdr[5:])
		// A batch is at most a capture log's buffer (MaxCaptureBuffer,
		// with some slack for its entries' framing): a larger one is not
		// the replica's.
		if size > MaxCaptureBuffer+childPipeSize {
			return fmt.Errorf("capture writer process: a batch of %d bytes exceeds the limit of %d", size, MaxCaptureBuffer+childPipeSize)
		}
		if cap(entries) < int(size) {
			entries = make([]byte, size)
		}
		entries = entries[:size]
		if _, err := io.ReadFull(br, entries); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("capture writer process: reading a batch: %w", err)
		}
		var w batchWriter
		switch hdr[0] {
		case childData:
			if dc == nil {
				return errors.New("capture writer process: model data records, with data collection off")
			}
			w = dc
		case childTelemetry:
			if tel == nil {
				return errors.New("capture writer process: telemetry records, with telemetry off")
			}
			w = tel
		default:
			return fmt.Errorf("capture writer process: a batch of unknown kind %q", hdr[0])
		}
		ok, failed, dropped := w.writeBatch(entries)
		var rep [childReport]byte
		rep[0] = hdr[0]
		binary.BigEndian.PutUint32(rep[1:], uint32(ok))
		binary.BigEndian.PutUint32(rep[5:], uint32(failed))
		binary.BigEndian.PutUint32(rep[9:], uint32(dropped))
		if _, err := out.Write(rep[:]); err != nil {
			return fmt.Errorf("capture writer process: reporting: %w", err)
		}
	}
}

// captureProcessOf is how run starts the capture writer process of a
// replica hosting Python with data collection or telemetry on (nil: the
// replica writes its records itself).
func captureProcessOf(args []string, getenv func(string) string) *captureProcess {
	if getenv(EnvCaptureWriter) == "in-process" {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return &captureProcess{path: exe, args: args, env: os.Environ()}
}
