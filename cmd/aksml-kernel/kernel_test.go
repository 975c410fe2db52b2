package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// client is a Jupyter client speaking to a kernel over its ZeroMQ sockets,
// as jupyter_client does: DEALER sockets for shell and control, SUB for
// iopub, REQ for the heartbeat.
type client struct {
	t       *testing.T
	sig     signer
	session string
	shell   zmq4.Socket
	control zmq4.Socket
	iopub   zmq4.Socket
	hb      zmq4.Socket
	pub     chan *message
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// startKernel serves a kernel in this process and returns a connected
// client; the kernel is shut down when the test ends.
func startKernel(t *testing.T) *client {
	t.Helper()
	p := freePorts(t, 5)
	conn := connectionInfo{Transport: "tcp", IP: "127.0.0.1", ShellPort: p[0], IOPubPort: p[1], StdinPort: p[2],
		ControlPort: p[3], HBPort: p[4], Key: "a0436f6c-1916-498b-8eb9-e81ab9368e84", SignatureScheme: "hmac-sha256"}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, conn, slog.New(slog.NewTextHandler(io.Discard, nil)), func() { close(started) })
	}()
	select {
	case <-started:
	case err := <-served:
		cancel()
		t.Fatalf("kernel did not start: %v", err)
	}
	c := &client{t: t, sig: signer{key: []byte(conn.Key)}, session: newID(), pub: make(chan *message, 1000)}
	cctx, ccancel := context.WithCancel(context.Background())
	c.shell = zmq4.NewDealer(cctx, zmq4.WithID(zmq4.SocketIdentity(c.session)))
	c.control = zmq4.NewDealer(cctx, zmq4.WithID(zmq4.SocketIdentity(c.session)))
	c.iopub = zmq4.NewSub(cctx)
	c.hb = zmq4.NewReq(cctx)
	for _, d := range []struct {
		s    zmq4.Socket
		port int
	}{{c.shell, conn.ShellPort}, {c.control, conn.ControlPort}, {c.iopub, conn.IOPubPort}, {c.hb, conn.HBPort}} {
		if err := d.s.Dial(conn.endpoint(d.port)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.iopub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		t.Fatal(err)
	}
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for {
			raw, err := c.iopub.Recv()
			if err != nil {
				return
			}
			m, err := c.sig.decode(raw.Frames)
			if err != nil {
				t.Errorf("iopub message: %v", err)
				continue
			}
			c.pub <- m
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		ccancel()
		for _, s := range []zmq4.Socket{c.shell, c.control, c.iopub, c.hb} {
			_ = s.Close()
		}
		<-pumped
	})
	c.waitIOPub()
	return c
}

// waitIOPub sends kernel_info requests until one's status reaches iopub:
// a SUB socket misses what is published before its subscription arrives,
// which is why Jupyter clients do the same.
func (c *client) waitIOPub() {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		id := c.send(c.shell, "kernel_info_request", map[string]any{})
		c.reply(c.shell, id)
		timeout := time.After(200 * time.Millisecond)
	wait:
		for {
			select {
			case m := <-c.pub:
				if parentID(m) == id {
					return
				}
			case <-timeout:
				break wait
			}
		}
	}
	c.t.Fatal("no iopub message reached the client")
}

func parentID(m *message) string {
	var h header
	_ = json.Unmarshal(m.Parent, &h)
	return h.MsgID
}

func (c *client) send(sock zmq4.Socket, msgType string, content any) string {
	c.t.Helper()
	m, err := newMessage(nil, c.session, msgType, content)
	if err != nil {
		c.t.Fatal(err)
	}
	frames, err := c.sig.encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := sock.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		c.t.Fatal(err)
	}
	return m.Header.MsgID
}

// reply receives the next message on sock and checks it answers id.
func (c *client) reply(sock zmq4.Socket, id string) *message {
	c.t.Helper()
	raw, err := sock.Recv()
	if err != nil {
		c.t.Fatal(err)
	}
	m, err := c.sig.decode(raw.Frames)
	if err != nil {
		c.t.Fatalf("reply: %v", err)
	}
	if got := parentID(m); got != id {
		c.t.Fatalf("reply %s answers %s, want %s", m.Header.MsgType, got, id)
	}
	return m
}

// outputs collects the iopub messages of request id until its idle status.
func (c *client) outputs(id string) []*message {
	c.t.Helper()
	var out []*message
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m := <-c.pub:
			if parentID(m) != id {
				continue
			}
			out = append(out, m)
			if m.Header.MsgType == "status" && strings.Contains(string(m.Content), `"idle"`) {
				return out
			}
		case <-timeout:
			c.t.Fatalf("no idle status for %s; got %d messages", id, len(out))
		}
	}
}

type execResult struct {
	reply   map[string]any
	outputs []*message
}

func (r execResult) find(msgType string) []map[string]any {
	var out []map[string]any
	for _, m := range r.outputs {
		if m.Header.MsgType == msgType {
			var c map[string]any
			_ = json.Unmarshal(m.Content, &c)
			out = append(out, c)
		}
	}
	return out
}

func (r execResult) stdout() string {
	var b strings.Builder
	for _, s := range r.find("stream") {
		if s["name"] == "stdout" {
			b.WriteString(s["text"].(string))
		}
	}
	return b.String()
}

func (r execResult) result() string {
	res := r.find("execute_result")
	if len(res) == 0 {
		return ""
	}
	return res[0]["data"].(map[string]any)["text/plain"].(string)
}

func (c *client) execute(code string) execResult {
	c.t.Helper()
	id := c.send(c.shell, "execute_request", map[string]any{"code": code, "silent": false, "store_history": true,
		"user_expressions": map[string]any{}, "allow_stdin": false, "stop_on_error": true})
	rep := c.reply(c.shell, id)
	var r execResult
	_ = json.Unmarshal(rep.Content, &r.reply)
	r.outputs = c.outputs(id)
	return r
}

func TestExecuteRoundTrip(t *testing.T) {
	c := startKernel(t)
	r := c.execute("import \"fmt\"\nx := 20\nfmt.Println(\"hello from\", \"cell\")\nx + 22")
	if r.reply["status"] != "ok" || r.reply["execution_count"] != 1.0 {
		t.Fatalf("execute_reply = %v", r.reply)
	}
	if got := r.result(); got != "42" {
		t.Errorf("execute_result = %q, want 42", got)
	}
	if got := r.stdout(); got != "hello from cell\n" {
		t.Errorf("stdout = %q", got)
	}
	var kinds []string
	for _, m := range r.outputs {
		kinds = append(kinds, m.Header.MsgType)
	}
	if got := strings.Join(kinds, ","); got != "status,execute_input,stream,execute_result,status" {
		t.Errorf("iopub messages = %s", got)
	}
	// the heartbeat echoes
	if err := c.hb.Send(zmq4.NewMsgString("ping")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.hb.Recv(); err != nil || string(m.Frames[0]) != "ping" {
		t.Errorf("heartbeat = %v, %v", m, err)
	}
}

// A message signed with another key is dropped unanswered: the next
// (good) request's reply is the first one, and the bad cell never ran.
func TestBadSignatureRefused(t *testing.T) {
	c := startKernel(t)
	bad := signer{key: []byte("not-the-key")}
	m, _ := newMessage(nil, c.session, "execute_request", map[string]any{"code": "ranBad := true", "silent": false})
	frames, _ := bad.encode(m)
	if err := c.shell.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		t.Fatal(err)
	}
	r := c.execute("ranBad")
	if r.reply["status"] != "error" || !strings.Contains(fmt.Sprint(r.reply["evalue"]), "undefined: ranBad") {
		t.Errorf("after a badly signed cell, ranBad: %v", r.reply)
	}
}

func TestPanicKeepsState(t *testing.T) {
	c := startKernel(t)
	c.execute("kept := \"earlier value\"")
	r := c.execute("var m map[string]int\nm[\"x\"] = 1")
	if r.reply["status"] != "error" || r.reply["ename"] != "panic" {
		t.Fatalf("reply = %v, want a panic error", r.reply)
	}
	errs := r.find("error")
	if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]["evalue"]), "cell[2]:") ||
		!strings.Contains(fmt.Sprint(errs[0]["evalue"]), "assignment to entry in nil map") {
		t.Errorf("error output = %v", errs)
	}
	r = c.execute("kept")
	if r.reply["status"] != "ok" || r.result() != `"earlier value"` {
		t.Errorf("after the panic: %v, result %q", r.reply, r.result())
	}
	if r.reply["execution_count"] != 3.0 {
		t.Errorf("execution_count = %v, want 3", r.reply["execution_count"])
	}
}

func TestInterruptLongCell(t *testing.T) {
	c := startKernel(t)
	c.execute("import \"fmt\"\nn := 0")
	id := c.send(c.shell, "execute_request", map[string]any{"code": "for { n++; if n == 1 { fmt.Println(\"looping\") } }", "silent": false})
	// wait for the cell to run, then interrupt it on the control channel
	for started := false; !started; {
		m := <-c.pub
		started = parentID(m) == id && m.Header.MsgType == "stream"
	}
	iid := c.send(c.control, "interrupt_request", map[string]any{})
	if rep := c.reply(c.control, iid); rep.Header.MsgType != "interrupt_reply" {
		t.Errorf("control reply = %s", rep.Header.MsgType)
	}
	rep := c.reply(c.shell, id)
	var content map[string]any
	_ = json.Unmarshal(rep.Content, &content)
	if content["status"] != "error" || content["ename"] != "interrupted" {
		t.Errorf("interrupted cell's reply = %v", content)
	}
	if r := c.execute("n > 0"); r.result() != "true" {
		t.Errorf("after the interrupt n > 0 = %q (%v)", r.result(), r.reply)
	}
}

func TestCompleteInspectIsComplete(t *testing.T) {
	c := startKernel(t)
	id := c.send(c.shell, "complete_request", map[string]any{"code": "svc := aml.Dep", "cursor_pos": 14})
	var comp struct {
		Matches     []string `json:"matches"`
		CursorStart int      `json:"cursor_start"`
		CursorEnd   int      `json:"cursor_end"`
		Status      string   `json:"status"`
	}
	_ = json.Unmarshal(c.reply(c.shell, id).Content, &comp)
	if comp.Status != "ok" || comp.CursorStart != 11 || comp.CursorEnd != 14 || !contains(comp.Matches, "Deploy") {
		t.Errorf("complete aml.Dep = %+v, want Deploy over [11,14)", comp)
	}
	id = c.send(c.shell, "inspect_request", map[string]any{"code": "webservice.Bool(true)", "cursor_pos": 12, "detail_level": 0})
	var insp struct {
		Found bool              `json:"found"`
		Data  map[string]string `json:"data"`
	}
	_ = json.Unmarshal(c.reply(c.shell, id).Content, &insp)
	if !insp.Found || insp.Data["text/plain"] != "func webservice.Bool(bool) *bool" {
		t.Errorf("inspect webservice.Bool = %+v", insp)
	}
	id = c.send(c.shell, "is_complete_request", map[string]any{"code": "func f() {"})
	var ic map[string]string
	_ = json.Unmarshal(c.reply(c.shell, id).Content, &ic)
	if ic["status"] != "incomplete" {
		t.Errorf("is_complete(func f() {) = %v", ic)
	}
}

func TestDisplayData(t *testing.T) {
	c := startKernel(t)
	r := c.execute("import \"github.com/aksml/aksml/notebook\"\nnotebook.Show(notebook.HTML(\"<b>bold</b>\"))\nnotebook.SVG(\"<svg></svg>\")")
	d := r.find("display_data")
	if len(d) != 1 || d[0]["data"].(map[string]any)["text/html"] != "<b>bold</b>" {
		t.Errorf("display_data = %v", d)
	}
	res := r.find("execute_result")
	if len(res) != 1 || res[0]["data"].(map[string]any)["image/svg+xml"] != "<svg></svg>" {
		t.Errorf("execute_result = %v", res)
	}
}

func TestShutdown(t *testing.T) {
	c := startKernel(t)
	id := c.send(c.control, "shutdown_request", map[string]any{"restart": false})
	if rep := c.reply(c.control, id); rep.Header.MsgType != "shutdown_reply" {
		t.Errorf("reply = %s", rep.Header.MsgType)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
