package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"time"
)

// protocolVersion is the Jupyter messaging protocol version spoken.
const protocolVersion = "5.3"

// delimiter separates the routing identities from the message.
var delimiter = []byte("<IDS|MSG>")

// header is a message header.
type header struct {
	MsgID    string `json:"msg_id"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	MsgType  string `json:"msg_type"`
	Version  string `json:"version"`
}

// message is one Jupyter message. Parent and Metadata are kept as the raw
// JSON received, so replies echo the request's header byte for byte.
type message struct {
	Identities [][]byte
	Header     header
	RawHeader  json.RawMessage // the header as received
	Parent     json.RawMessage
	Metadata   json.RawMessage
	Content    json.RawMessage
	Buffers    [][]byte
}

// connectionInfo is the connection file Jupyter writes for a kernel.
type connectionInfo struct {
	Transport       string `json:"transport"`
	IP              string `json:"ip"`
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	Key             string `json:"key"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name"`
}

// parseConnection reads a connection file's content, checking every field
// the kernel needs.
func parseConnection(data []byte) (connectionInfo, error) {
	var c connectionInfo
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("connection file: %w", err)
	}
	var errs []error
	if c.Transport == "" {
		c.Transport = "tcp"
	}
	if c.Transport != "tcp" {
		errs = append(errs, fmt.Errorf("connection file: transport %q is not supported (only tcp)", c.Transport))
	}
	if c.IP == "" {
		errs = append(errs, errors.New("connection file: ip is empty"))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"shell_port", c.ShellPort}, {"iopub_port", c.IOPubPort}, {"stdin_port", c.StdinPort},
		{"control_port", c.ControlPort}, {"hb_port", c.HBPort}} {
		if p.v <= 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("connection file: %s %d is not a port (1–65535)", p.name, p.v))
		}
	}
	switch c.SignatureScheme {
	case "hmac-sha256":
	case "":
		if c.Key != "" {
			errs = append(errs, errors.New(`connection file: signature_scheme is empty but key is set (want "hmac-sha256")`))
		}
	default:
		errs = append(errs, fmt.Errorf("connection file: signature_scheme %q is not supported (want \"hmac-sha256\")", c.SignatureScheme))
	}
	return c, errors.Join(errs...)
}

func readConnection(path string) (connectionInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return connectionInfo{}, err
	}
	return parseConnection(data)
}

// signer signs and checks messages with the connection's key; an empty key
// signs nothing and accepts any signature, as Jupyter does.
type signer struct {
	key []byte
}

func (s signer) mac() hash.Hash { return hmac.New(sha256.New, s.key) }

func (s signer) sign(parts ...[]byte) []byte {
	if len(s.key) == 0 {
		return nil
	}
	m := s.mac()
	for _, p := range parts {
		m.Write(p)
	}
	sum := m.Sum(nil)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// errBadSignature is returned by decode for a message whose signature does
// not match its content.
var errBadSignature = errors.New("message signature does not match (wrong key, or the message was altered)")

// decode parses the frames of a received message and checks its signature.
func (s signer) decode(frames [][]byte) (*message, error) {
	i := 0
	for i < len(frames) && !bytes.Equal(frames[i], delimiter) {
		i++
	}
	if i == len(frames) {
		return nil, errors.New("message has no <IDS|MSG> delimiter")
	}
	if len(frames) < i+6 {
		return nil, fmt.Errorf("message has %d frames after the delimiter, want at least 5 (signature, header, parent_header, metadata, content)", len(frames)-i-1)
	}
	sig, hdr, parent, meta, content := frames[i+1], frames[i+2], frames[i+3], frames[i+4], frames[i+5]
	if len(s.key) != 0 {
		want := s.sign(hdr, parent, meta, content)
		if !hmac.Equal(want, sig) {
			return nil, errBadSignature
		}
	}
	m := &message{Identities: frames[:i], RawHeader: hdr, Parent: parent, Metadata: meta, Content: content, Buffers: frames[i+6:]}
	if err := json.Unmarshal(hdr, &m.Header); err != nil {
		return nil, fmt.Errorf("message header: %w", err)
	}
	if m.Header.MsgType == "" {
		return nil, errors.New("message header: msg_type is empty")
	}
	if len(content) == 0 || !json.Valid(content) {
		return nil, errors.New("message content is not JSON")
	}
	if len(parent) != 0 && !json.Valid(parent) {
		return nil, errors.New("message parent_header is not JSON")
	}
	if len(meta) != 0 && !json.Valid(meta) {
		return nil, errors.New("message metadata is not JSON")
	}
	return m, nil
}

// encode returns the frames of m, signed.
func (s signer) encode(m *message) ([][]byte, error) {
	hdr, err := json.Marshal(m.Header)
	if err != nil {
		return nil, err
	}
	parent, meta, content := m.Parent, m.Metadata, m.Content
	if len(parent) == 0 {
		parent = []byte("{}")
	}
	if len(meta) == 0 {
		meta = []byte("{}")
	}
	if len(content) == 0 {
		content = []byte("{}")
	}
	frames := make([][]byte, 0, len(m.Identities)+6+len(m.Buffers))
	frames = append(frames, m.Identities...)
	frames = append(frames, delimiter, s.sign(hdr, parent, meta, content), hdr, parent, meta, content)
	return append(frames, m.Buffers...), nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// reply builds a message of type msgType in reply to parent (nil for none),
// with content marshalled as JSON.
func newMessage(parent *message, session, msgType string, content any) (*message, error) {
	c, err := json.Marshal(content)
	if err != nil {
		return nil, err
	}
	m := &message{
		Header: header{MsgID: newID(), Session: session, Username: "kernel",
			Date: time.Now().UTC().Format(time.RFC3339Nano), MsgType: msgType, Version: protocolVersion},
		Content: c,
	}
	if parent != nil {
		m.Parent = parent.RawHeader
		if len(m.Parent) == 0 {
			m.Parent, _ = json.Marshal(parent.Header)
		}
		m.Identities = parent.Identities
	}
	return m, nil
}
