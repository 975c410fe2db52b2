package drivertest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aksml/aksml/scoring"
)

// funcHandler adapts a function to scoring.Handler.
type funcHandler func(ctx context.Context, in []byte) ([]byte, error)

func (f funcHandler) Init(ctx context.Context, dir string) error { return nil }
func (f funcHandler) Run(ctx context.Context, in []byte) ([]byte, error) {
	return f(ctx, in)
}

// Func returns a NewHandler whose Run is f.
func Func(f func(ctx context.Context, in []byte) ([]byte, error)) scoring.NewHandler {
	return func() scoring.Handler { return funcHandler(f) }
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// testStatusCodes checks what callers see, end to end through the
// cluster's front-end: 502 for a model error, 504 past the scoring
// timeout, 503 when the only replica is busy past the queue wait, 413 over
// 100 MB, 405 for other methods, 404 for an unknown service.
func testStatusCodes(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)

	failing := Spec("failing", Func(func(ctx context.Context, in []byte) ([]byte, error) {
		return nil, errors.New("model exploded")
	}), 1)
	st := deploy(ctx, t, c, failing)
	if code, body, err := Score(ctx, st.ScoringURI, "", `{}`); err != nil || code != http.StatusBadGateway {
		t.Errorf("model error: %d %q %v, want 502", code, body, err)
	}

	slow := Spec("slow", Func(func(ctx context.Context, in []byte) ([]byte, error) {
		select {
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
		return []byte(`1`), nil
	}), 1)
	slow.Versions[0].Replica.ScoringTimeout = 200 * time.Millisecond
	st = deploy(ctx, t, c, slow)
	start := time.Now()
	if code, body, err := Score(ctx, st.ScoringURI, "", `{}`); err != nil || code != http.StatusGatewayTimeout {
		t.Errorf("past scoring_timeout_ms: %d %q %v, want 504", code, body, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a 200 ms scoring timeout answered after %v", d)
	}

	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	busy := Spec("busy", Func(func(ctx context.Context, in []byte) ([]byte, error) {
		if string(in) == "hold" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return []byte(`"ok"`), nil
	}), 1)
	busy.Versions[0].Replica.MaxQueueWait = 100 * time.Millisecond
	st = deploy(ctx, t, c, busy)
	held := make(chan int, 1)
	go func() {
		code, _, _ := Score(ctx, st.ScoringURI, "", "hold")
		held <- code
	}()
	// Wait until the held request occupies the only slot: then a second
	// request queues for max_request_wait_time and gets 503.
	var code int
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		code, body, _ = Score(ctx, st.ScoringURI, "", "quick")
		if code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "Too many requests for service busy (overloaded)") {
		t.Errorf("busy replica: %d %q, want 503 overloaded", code, body)
	}
	once.Do(func() { close(release) })
	if code := <-held; code != 200 {
		t.Errorf("the held request: %d, want 200", code)
	}

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.ScoringURI, io.LimitReader(zeros{}, 100<<20+1))
	req.ContentLength = 100<<20 + 1
	if resp, err := http.DefaultClient.Do(req); err != nil {
		// A server may close the connection while the client still sends.
		if !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
			t.Errorf("100 MB + 1 body: %v", err)
		}
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("100 MB + 1 body: %d, want 413", resp.StatusCode)
		}
	}

	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, st.ScoringURI, strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %v %v, want 405", resp, err)
	} else {
		resp.Body.Close()
	}
	missing := strings.Replace(st.ScoringURI, "/busy/", "/nobody/", 1)
	if code, _, err := Score(ctx, missing, "", `{}`); err != nil || code != http.StatusNotFound {
		t.Errorf("unknown service: %d %v, want 404", code, err)
	}
}
