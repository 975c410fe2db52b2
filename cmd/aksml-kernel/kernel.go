package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-zeromq/zmq4"

	"github.com/aksml/aksml/internal/gointerp"
	"github.com/aksml/aksml/notebook"
)

// version is the kernel's implementation version.
const version = "0.1.0"

// kernel serves one Jupyter connection: it owns the sockets, the
// interpreter and the execution counter.
type kernel struct {
	conn    connectionInfo
	sig     signer
	session string
	log     *slog.Logger

	shell, control, stdin, iopub, hb zmq4.Socket

	pubMu sync.Mutex // serialises iopub sends

	in    *gointerp.Interpreter
	count int

	execMu  sync.Mutex
	cancel  context.CancelCauseFunc // of the running cell, nil when idle
	current *message                // the request whose outputs are being published

	stop     context.CancelFunc
	shutdown chan struct{}
	once     sync.Once
}

// endpoint is a ZeroMQ address of the connection.
func (c connectionInfo) endpoint(port int) string {
	return fmt.Sprintf("%s://%s:%d", c.Transport, c.IP, port)
}

// serve runs a kernel on the connection until a shutdown_request or until
// ctx ends. started, when not nil, is called once every socket listens.
func serve(ctx context.Context, conn connectionInfo, log *slog.Logger, started func()) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	in, err := gointerp.New(nil)
	if err != nil {
		return err
	}
	k := &kernel{conn: conn, sig: signer{key: []byte(conn.Key)}, session: newID(), log: log,
		in: in, stop: stop, shutdown: make(chan struct{})}
	k.shell = zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("aksml-shell")))
	k.control = zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("aksml-control")))
	k.stdin = zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("aksml-stdin")))
	k.iopub = zmq4.NewPub(ctx)
	k.hb = zmq4.NewRep(ctx)
	socks := []struct {
		s    zmq4.Socket
		port int
		name string
	}{{k.shell, conn.ShellPort, "shell"}, {k.control, conn.ControlPort, "control"}, {k.stdin, conn.StdinPort, "stdin"},
		{k.iopub, conn.IOPubPort, "iopub"}, {k.hb, conn.HBPort, "heartbeat"}}
	defer func() {
		for _, s := range socks {
			_ = s.s.Close()
		}
	}()
	for _, s := range socks {
		if err := s.s.Listen(conn.endpoint(s.port)); err != nil {
			return fmt.Errorf("%s channel: listening on %s: %w", s.name, conn.endpoint(s.port), err)
		}
	}
	in.SetOutput(&stream{k: k, name: "stdout"}, &stream{k: k, name: "stderr"})
	restore := notebook.SetPublisher(k.display)
	defer restore()
	if started != nil {
		started()
	}

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); k.heartbeat(ctx) }()
	go func() { defer wg.Done(); k.loop(ctx, k.control, "control") }()
	go func() { defer wg.Done(); k.loop(ctx, k.shell, "shell") }()
	select {
	case <-ctx.Done():
	case <-k.shutdown:
	}
	k.interrupt(errors.New("kernel shutting down"))
	stop()
	for _, s := range socks {
		_ = s.s.Close()
	}
	wg.Wait()
	return nil
}

func (k *kernel) heartbeat(ctx context.Context) {
	for ctx.Err() == nil {
		msg, err := k.hb.Recv()
		if err != nil {
			return
		}
		if err := k.hb.Send(msg); err != nil {
			return
		}
	}
}

// loop receives the messages of a shell or control socket and handles them
// one at a time.
func (k *kernel) loop(ctx context.Context, sock zmq4.Socket, channel string) {
	for ctx.Err() == nil {
		raw, err := sock.Recv()
		if err != nil {
			return
		}
		msg, err := k.sig.decode(raw.Frames)
		if err != nil {
			k.log.Warn("refusing message", "channel", channel, "err", err)
			continue
		}
		k.handle(ctx, sock, channel, msg)
	}
}

func (k *kernel) send(sock zmq4.Socket, parent *message, msgType string, content any) {
	m, err := newMessage(parent, k.session, msgType, content)
	if err != nil {
		k.log.Error("encoding reply", "type", msgType, "err", err)
		return
	}
	frames, err := k.sig.encode(m)
	if err != nil {
		k.log.Error("encoding reply", "type", msgType, "err", err)
		return
	}
	if sock == k.iopub {
		k.pubMu.Lock()
		defer k.pubMu.Unlock()
	}
	if err := sock.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		k.log.Warn("sending", "type", msgType, "err", err)
	}
}

// publish sends an iopub message about parent.
func (k *kernel) publish(parent *message, msgType string, content any) {
	var topic *message
	if parent != nil {
		c := *parent
		c.Identities = [][]byte{[]byte("kernel." + k.session + "." + msgType)}
		topic = &c
	}
	m, err := newMessage(topic, k.session, msgType, content)
	if err != nil {
		return
	}
	if topic == nil {
		m.Identities = [][]byte{[]byte("kernel." + k.session + "." + msgType)}
	}
	frames, err := k.sig.encode(m)
	if err != nil {
		return
	}
	k.pubMu.Lock()
	defer k.pubMu.Unlock()
	if err := k.iopub.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		k.log.Warn("publishing", "type", msgType, "err", err)
	}
}

func (k *kernel) status(parent *message, state string) {
	k.publish(parent, "status", map[string]string{"execution_state": state})
}

func (k *kernel) handle(ctx context.Context, sock zmq4.Socket, channel string, msg *message) {
	k.status(msg, "busy")
	defer k.status(msg, "idle")
	t := msg.Header.MsgType
	reply := strings.TrimSuffix(t, "_request") + "_reply"
	switch t {
	case "kernel_info_request":
		k.send(sock, msg, reply, kernelInfo())
	case "execute_request":
		k.execute(ctx, sock, msg)
	case "is_complete_request":
		var req struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(msg.Content, &req)
		st, indent := gointerp.IsComplete(req.Code)
		k.send(sock, msg, reply, map[string]string{"status": st, "indent": indent})
	case "complete_request":
		var req struct {
			Code      string `json:"code"`
			CursorPos int    `json:"cursor_pos"`
		}
		_ = json.Unmarshal(msg.Content, &req)
		c := k.in.Complete(req.Code, runeToByte(req.Code, req.CursorPos))
		if c.Matches == nil {
			c.Matches = []string{}
		}
		k.send(sock, msg, reply, map[string]any{"status": "ok", "matches": c.Matches,
			"cursor_start": byteToRune(req.Code, c.Start), "cursor_end": byteToRune(req.Code, c.End), "metadata": map[string]any{}})
	case "inspect_request":
		var req struct {
			Code        string `json:"code"`
			CursorPos   int    `json:"cursor_pos"`
			DetailLevel int    `json:"detail_level"`
		}
		_ = json.Unmarshal(msg.Content, &req)
		text, found := k.in.Inspect(req.Code, runeToByte(req.Code, req.CursorPos))
		data := map[string]string{}
		if found {
			data["text/plain"] = text
		}
		k.send(sock, msg, reply, map[string]any{"status": "ok", "found": found, "data": data, "metadata": map[string]any{}})
	case "history_request":
		k.send(sock, msg, reply, map[string]any{"status": "ok", "history": []any{}})
	case "comm_info_request":
		k.send(sock, msg, reply, map[string]any{"status": "ok", "comms": map[string]any{}})
	case "interrupt_request":
		k.interrupt(errors.New("interrupted by the user"))
		k.send(sock, msg, reply, map[string]string{"status": "ok"})
	case "shutdown_request":
		var req struct {
			Restart bool `json:"restart"`
		}
		_ = json.Unmarshal(msg.Content, &req)
		k.send(sock, msg, reply, map[string]any{"status": "ok", "restart": req.Restart})
		k.once.Do(func() { close(k.shutdown) })
	default:
		k.log.Info("ignoring message", "channel", channel, "type", t)
	}
}

func kernelInfo() map[string]any {
	return map[string]any{
		"status":                 "ok",
		"protocol_version":       protocolVersion,
		"implementation":         "aksml-kernel",
		"implementation_version": version,
		"language_info": map[string]any{
			"name":            "go",
			"version":         strings.TrimPrefix(runtime.Version(), "go"),
			"mimetype":        "text/x-go",
			"file_extension":  ".go",
			"pygments_lexer":  "go",
			"codemirror_mode": "go",
		},
		"banner":     "aksml Go kernel " + version + ": Go cells interpreted by yaegi, with aksml's packages compiled in",
		"help_links": []any{},
	}
}

// interrupt stops the running cell, if any.
func (k *kernel) interrupt(cause error) {
	k.execMu.Lock()
	defer k.execMu.Unlock()
	if k.cancel != nil {
		k.cancel(cause)
	}
}

func (k *kernel) execute(ctx context.Context, sock zmq4.Socket, msg *message) {
	var req struct {
		Code         string `json:"code"`
		Silent       bool   `json:"silent"`
		StoreHistory *bool  `json:"store_history"`
	}
	if err := json.Unmarshal(msg.Content, &req); err != nil {
		k.send(sock, msg, "execute_reply", map[string]any{"status": "error", "execution_count": k.count,
			"ename": "BadRequest", "evalue": "execute_request content: " + err.Error(), "traceback": []string{}})
		return
	}
	if !req.Silent && (req.StoreHistory == nil || *req.StoreHistory) {
		k.count++
	}
	n := k.count
	if !req.Silent {
		k.publish(msg, "execute_input", map[string]any{"code": req.Code, "execution_count": n})
	}
	cellCtx, cancel := context.WithCancelCause(ctx)
	k.execMu.Lock()
	k.cancel, k.current = cancel, msg
	k.execMu.Unlock()
	res, err := k.in.Eval(cellCtx, fmt.Sprintf("cell[%d]", n), req.Code)
	k.execMu.Lock()
	k.cancel = nil
	k.execMu.Unlock()
	cancel(nil)

	if err != nil {
		var e *gointerp.Error
		if !errors.As(err, &e) {
			e = &gointerp.Error{Name: "Error", Message: err.Error()}
		}
		tb := append([]string{e.Message}, e.Trace...)
		k.publish(msg, "error", map[string]any{"ename": e.Name, "evalue": e.Message, "traceback": tb})
		k.send(sock, msg, "execute_reply", map[string]any{"status": "error", "execution_count": n,
			"ename": e.Name, "evalue": e.Message, "traceback": tb})
		return
	}
	if data := resultData(res.Value); data != nil && !req.Silent {
		k.publish(msg, "execute_result", map[string]any{"execution_count": n, "data": data, "metadata": map[string]any{}})
	}
	k.send(sock, msg, "execute_reply", map[string]any{"status": "ok", "execution_count": n,
		"user_expressions": map[string]any{}, "payload": []any{}})
}

// resultData is the MIME bundle of a cell's value, nil for none.
func resultData(v reflect.Value) map[string]string {
	if !v.IsValid() || !v.CanInterface() {
		return nil
	}
	x := v.Interface()
	if b, ok := x.(interface{ MIMEBundle() map[string]string }); ok {
		return b.MIMEBundle()
	}
	var text string
	switch x := x.(type) {
	case json.RawMessage:
		text = string(x)
	case []byte:
		if utf8.Valid(x) {
			text = string(x)
		} else {
			text = fmt.Sprint(x)
		}
	case string:
		text = fmt.Sprintf("%q", x)
	case error:
		text = "error: " + x.Error()
	case fmt.Stringer:
		text = x.String()
	default:
		text = fmt.Sprintf("%+v", x)
	}
	return map[string]string{"text/plain": text}
}

// display publishes a notebook.Show as display_data of the running cell.
func (k *kernel) display(d notebook.Data) {
	k.execMu.Lock()
	parent := k.current
	k.execMu.Unlock()
	k.publish(parent, "display_data", map[string]any{"data": d.MIMEBundle(), "metadata": map[string]any{}, "transient": map[string]any{}})
}

// stream publishes what cells write to stdout or stderr as stream messages
// of the running cell.
type stream struct {
	k    *kernel
	name string
}

func (s *stream) Write(p []byte) (int, error) {
	s.k.execMu.Lock()
	parent := s.k.current
	s.k.execMu.Unlock()
	s.k.publish(parent, "stream", map[string]string{"name": s.name, "text": strings.ToValidUTF8(string(p), "\uFFFD")})
	return len(p), nil
}

var _ io.Writer = (*stream)(nil)

// runeToByte converts a cursor position in code points (protocol 5.2+) to a
// byte offset in s, clamped to s.
func runeToByte(s string, pos int) int {
	if pos <= 0 {
		return 0
	}
	i := 0
	for b := range s {
		if i == pos {
			return b
		}
		i++
	}
	return len(s)
}

func byteToRune(s string, off int) int {
	off = min(max(off, 0), len(s))
	return utf8.RuneCountInString(s[:off])
}
