package drivertest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoad runs the load generator against a server whose every third
// answer is a 503 and the others alternate between two tags.
func TestLoad(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Caller, I *int }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Caller == nil || in.I == nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch i := n.Add(1); {
		case i%3 == 0:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case i%2 == 0:
			w.Write([]byte(`{"tag":"even"}`))
		default:
			w.Write([]byte(`{"tag":"odd"}`))
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	l := StartLoad(ctx, t, srv.Client(), srv.URL, 3)
	l.Wait(ctx, t, 1800) // 1200 answers: the tail is trimmed
	l.Stop()
	l.Stop() // a second Stop (and the one at cleanup) is harmless

	total, failed := l.Total(), l.Failed()
	if total < 1800 || total != n.Load() {
		t.Errorf("Total %d, want at least 1800 and the server's count %d", total, n.Load())
	}
	if failed != total/3 {
		t.Errorf("Failed %d of %d, want every third", failed, total)
	}
	f := l.Failures()
	if len(f) != maxLoadFailures || !strings.HasPrefix(f[0], "503 ") || !strings.Contains(f[0], "busy") {
		t.Errorf("Failures: %d kept, first %q; want %d, each with status and body", len(f), f[0], maxLoadFailures)
	}
	got := l.Take()
	if got["odd"]+got["even"] != int(total-failed) || len(got) != 2 {
		t.Errorf("Take %v, want %d answers tagged odd or even", got, total-failed)
	}
	if again := l.Take(); len(again) != 0 {
		t.Errorf("second Take %v, want nothing new after Stop", again)
	}
	tail := l.Tail(10)
	if len(tail) != 10 {
		t.Errorf("Tail(10) = %v", tail)
	}
	if all := l.Tail(5000); len(all) < 500 || len(all) > 1000 {
		t.Errorf("Tail kept %d answers, want 500 to 1000", len(all))
	}
}

// TestLoadSettle: a request in flight when the server's answer changes
// still brings the old answer; Settle keeps it out of the counts.
func TestLoadSettle(t *testing.T) {
	t.Parallel()
	var tag atomic.Value
	tag.Store("old")
	held := make(chan struct{})
	release := make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer := tag.Load().(string)
		if holding.CompareAndSwap(true, false) {
			close(held)
			<-release
		}
		w.Write([]byte(`{"tag":"` + answer + `"}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	l := StartLoad(ctx, t, srv.Client(), srv.URL, 2)
	<-held // one caller's request took "old" and waits
	tag.Store("new")
	settled := make(chan struct{})
	go func() { l.Settle(ctx, t); close(settled) }()
	l.Wait(ctx, t, 20) // the other caller goes on; Settle waits for the held one
	select {
	case <-settled:
		t.Fatal("Settle returned while a caller's request from before it was in flight")
	default:
	}
	close(release)
	<-settled
	l.Wait(ctx, t, 50)
	l.Stop()
	if got := l.Take(); got["old"] != 0 || got["new"] < 50 {
		t.Errorf("after Settle: %v, want only new answers", got)
	}
}
