package wire

import "testing"

// BenchmarkLeanExchange is the wire work of one request on the lean path,
// as bench/frontend's load sends it: scan the caller's request, write the
// replica's, scan the replica's answer, write the caller's, with a fresh
// request id. It must not allocate.
func BenchmarkLeanExchange(b *testing.B) {
	req := []byte("POST /api/v1/service/bench/score HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer 0123456789abcdef0123456789abcdef\r\n" +
		"Content-Type: application/json\r\nContent-Length: 34\r\n\r\n{\"data\": [[1.0, 2.0, 3.0, 4.0]]}\r\n")
	ans := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Wed, 02 Dec 2026 21:00:00 GMT\r\nContent-Length: 17\r\n\r\n{\"result\": [0.5]}")
	var lr Request
	var la Response
	var idBuf [36]byte
	up := make([]byte, 0, 1024)
	out := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if ScanRequest(req, 1<<20, &lr) != OK {
			b.Fatal("request not scanned")
		}
		id := NewRequestID(idBuf[:0])
		up = AppendUpstream(up[:0], req, &lr, "/score", "127.0.0.1:9000", id)
		if ScanResponse(ans, &la) != OK {
			b.Fatal("answer not scanned")
		}
		out = AppendAnswer(out[:0], ans, &la, id, "blue", false)
	}
}
