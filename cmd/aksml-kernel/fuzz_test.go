package main

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary frames to the message decoder: it returns a
// message or an error, never panics, and a decoded message re-encodes to
// frames that decode to the same header.
func FuzzDecode(f *testing.F) {
	s := signer{key: []byte("k")}
	m, _ := newMessage(nil, "sess", "execute_request", map[string]any{"code": "1"})
	good, _ := s.encode(m)
	f.Add(bytes.Join(good, []byte{0}))
	f.Add([]byte("<IDS|MSG>"))
	f.Add([]byte("id\x00<IDS|MSG>\x00sig\x00{}\x00{}\x00{}\x00{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		frames := bytes.Split(data, []byte{0})
		for _, key := range []string{"", "k"} {
			s := signer{key: []byte(key)}
			m, err := s.decode(frames)
			if err != nil {
				continue
			}
			again, err := s.encode(m)
			if err != nil {
				t.Fatalf("re-encoding a decoded message: %v", err)
			}
			m2, err := s.decode(again)
			if err != nil || m2.Header != m.Header {
				t.Fatalf("round trip: %v, %+v vs %+v", err, m2, m)
			}
		}
	})
}

// FuzzParseConnection: a connection file is accepted or refused with an
// error, never a panic; an accepted one names five ports.
func FuzzParseConnection(f *testing.F) {
	f.Add([]byte(`{"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5, "ip": "127.0.0.1", "key": "k", "transport": "tcp", "signature_scheme": "hmac-sha256"}`))
	f.Add([]byte(`{"transport": "ipc"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConnection(data)
		if err != nil {
			return
		}
		for _, p := range []int{c.ShellPort, c.IOPubPort, c.StdinPort, c.ControlPort, c.HBPort} {
			if p <= 0 || p > 65535 {
				t.Fatalf("accepted port %d", p)
			}
		}
	})
}

func TestParseConnectionErrors(t *testing.T) {
	_, err := parseConnection([]byte(`{"transport": "ipc", "ip": "", "shell_port": 0, "iopub_port": 70000, "stdin_port": 3, "control_port": 4, "hb_port": 5, "signature_scheme": "hmac-md5", "key": "k"}`))
	for _, want := range []string{`transport "ipc"`, "ip is empty", "shell_port 0", "iopub_port 70000", `signature_scheme "hmac-md5"`} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
