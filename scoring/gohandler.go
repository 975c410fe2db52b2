package scoring

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/aksml/aksml/errcode"
)

// SchemaProvider is an optional interface for a Handler that declares the
// JSON schemas (Swagger 2.0 schema objects) of its input and output, as the
// inference_schema decorators do for a score.py. /swagger.json then carries
// them as ServiceInput and ServiceOutput; nil means the generic schema.
type SchemaProvider interface {
	Schema() (input, output json.RawMessage)
}

// HandlerFunc adapts a function to a Handler whose Init does nothing.
type HandlerFunc func(ctx context.Context, input []byte) ([]byte, error)

// Init does nothing.
func (HandlerFunc) Init(context.Context, string) error { return nil }

// Run calls f.
func (f HandlerFunc) Run(ctx context.Context, input []byte) ([]byte, error) { return f(ctx, input) }

const runFailed = "An unexpected error occurred in scoring script. Check the logs for more info."

// goResult is the outcome of one Run.
type goResult struct {
	out []byte
	err error
}

func (s *Server) scoreGo(w http.ResponseWriter, r *http.Request) {
	if s.raw != nil {
		s.scoreRaw(w, r)
		return
	}
	bp := getBuf()
	body, err := readBody(r, (*bp)[:0], s.cfg.MaxBodyBytes)
	if err != nil {
		putBuf(bp)
		s.bodyError(w, err)
		return
	}
	if r.Method == http.MethodGet {
		body = queryJSON(r)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	done := make(chan goResult, 1)
	clk := s.cfg.Clock
	start := clk.Now()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- goResult{err: errcode.Errorf(errcode.Internal, "panic: %v\n%s", p, debug.Stack())}
			}
		}()
		out, err := s.goh.Run(ctx, body)
		done <- goResult{out, err}
	}()
	timer := clk.NewTimer(s.cfg.ScoringTimeout)
	var res goResult
	select {
	case res = <-done:
		timer.Stop()
		// Run's output may alias its input (an echo): the buffer goes
		// back to the pool only once the answer is written.
		defer func() {
			*bp = body[:0]
			putBuf(bp)
		}()
	case <-timer.C():
		// The buffer stays with the abandoned Run.
		cancel()
		ms := s.cfg.ScoringTimeout.Milliseconds()
		s.event(slog.LevelWarn, fmt.Sprintf("Run did not finish within the scoring timeout of %d ms", ms))
		w.Header()["X-Ms-Run-Fn-Exec-Ms"] = execMS(clk.Since(start))
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("Scoring timeout after %d ms", ms), true)
		return
	}
	h := w.Header()
	h["X-Ms-Run-Fn-Exec-Ms"] = execMS(clk.Since(start))
	if res.err != nil {
		status, msg := s.goErrorStatus(res.err)
		writeError(w, status, msg, status >= 500)
		return
	}
	h["Content-Type"] = hdrJSON
	h["X-Ms-Run-Function-Failed"] = hdrFalse
	h["Content-Length"] = []string{strconv.Itoa(len(res.out))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.out)
}

// scoreRaw hands the request to a RawHTTPHandler, with the body limited and
// the context ending at the scoring timeout.
func (s *Server) scoreRaw(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	t := s.cfg.Clock.AfterFunc(s.cfg.ScoringTimeout, cancel)
	defer t.Stop()
	r = r.WithContext(ctx)
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.event(slog.LevelError, fmt.Sprintf("Encountered panic in ServeScore: %v\n%s", p, debug.Stack()))
			writeError(w, http.StatusInternalServerError, runFailed, true)
		}
	}()
	s.raw.ServeScore(w, r)
}

// queryJSON turns the query of GET /score into the JSON object Azure ML's
// server passes to run(): each value parsed as JSON when it is valid JSON,
// repeated keys as lists.
func queryJSON(r *http.Request) []byte {
	q := r.URL.Query()
	out := make(map[string]any, len(q))
	for k, vs := range q {
		vals := make([]any, len(vs))
		for i, v := range vs {
			var x any
			if json.Unmarshal([]byte(v), &x) == nil {
				vals[i] = x
			} else {
				vals[i] = v
			}
		}
		if len(vals) == 1 {
			out[k] = vals[0]
		} else {
			out[k] = vals
		}
	}
	b, _ := json.Marshal(out)
	return b
}
