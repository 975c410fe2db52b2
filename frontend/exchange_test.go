package frontend

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// TestBreaker: a tripped breaker keeps its replica out for ejectFor, by the
// injected clock, then lets it in again and reads no clock after that.
func TestBreaker(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	reads := 0
	clock := func() time.Time { reads++; return clk.now() }
	var b breaker
	var now int64
	if !b.allows(&now, clock) || reads != 0 {
		t.Fatalf("a closed breaker: allows %v after %d clock reads", b.allows(&now, clock), reads)
	}
	b.trip(clk.now())
	for _, c := range []struct {
		after time.Duration
		want  bool
	}{{0, false}, {ejectFor - time.Millisecond, false}, {ejectFor, true}} {
		clk.t = time.Unix(1000, 0).Add(c.after)
		now = 0
		if got := b.allows(&now, clock); got != c.want {
			t.Errorf("%v after tripping: allows %v, want %v", c.after, got, c.want)
		}
	}
	reads = 0
	now = 0
	if !b.allows(&now, clock) || reads != 0 {
		t.Errorf("once closed again: %d clock reads", reads)
	}
}

// TestExchangeDecisions: what an exchange does after each outcome: it sends
// again only a request that provably never reached a replica, at most
// maxRetries times; a failed dial keeps the replica out for ejectFor (by the
// router's clock); every end gives the slot back and settles the count.
func TestExchangeDecisions(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	rt := New(nil)
	rt.now = clk.now
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 1,
		ScoringTimeout: 3 * time.Second, Replicas: []Replica{rep.replica("r", true)}}}})
	r := rt.table.Load().routes["svc"]
	p := plan{r: r, idx: 0, kind: kindScore}
	vs := r.versions[0]
	inflight := func() int { _, _, n := vs.pool.counts(); return n + int(vs.inflight.Load())*1000 }

	for _, c := range []struct {
		o     outcome
		retry bool
		code  int
	}{
		{outNotSent, true, 0},
		{outUnreachable, true, 0},
		{outTimedOut, false, http.StatusGatewayTimeout},
		{outCallerLeft, false, 499},
		{outLost, false, http.StatusBadGateway},
	} {
		var x exch
		x.begin(p, clk.now())
		if !x.tryTake() {
			t.Fatalf("outcome %d: no slot", c.o)
		}
		retry, code, _ := x.failed(c.o, rt.now)
		if retry != c.retry || code != c.code {
			t.Errorf("outcome %d: retry %v code %d, want %v %d", c.o, retry, code, c.retry, c.code)
		}
		if c.o == outUnreachable {
			if x.tryTake() {
				t.Errorf("a replica whose dial failed is picked at once")
			}
			clk.t = clk.t.Add(ejectFor)
		}
		x.end(code, clk.now())
		if n := inflight(); n != 0 {
			t.Errorf("outcome %d: %d slots and %d requests still counted", c.o, n%1000, n/1000)
		}
	}
	// The cap: maxRetries sends again, then 502 (or 503 for dials).
	for _, o := range []outcome{outNotSent, outUnreachable} {
		var x exch
		x.begin(p, clk.now())
		for i := 0; ; i++ {
			if !x.tryTake() {
				clk.t = clk.t.Add(ejectFor)
				if !x.tryTake() {
					t.Fatal("no slot")
				}
			}
			retry, code, _ := x.failed(o, rt.now)
			if !retry {
				want := http.StatusBadGateway
				if o == outUnreachable {
					want = http.StatusServiceUnavailable
				}
				if i != maxRetries || code != want {
					t.Errorf("outcome %d: gave up after %d sends again with %d, want %d and %d", o, i, code, maxRetries, want)
				}
				x.end(code, clk.now())
				break
			}
		}
	}
	if n := inflight(); n != 0 {
		t.Errorf("%d slots and %d requests still counted", n%1000, n/1000)
	}
	if o := outcomeOf(nil, &dialError{errors.New("refused")}); o != outUnreachable {
		t.Errorf("a dial error: outcome %d", o)
	}
	if o := outcomeOf(nil, &notSentError{io.EOF}); o != outNotSent {
		t.Errorf("a write that sent nothing: outcome %d", o)
	}
	if o := outcomeOf(nil, io.EOF); o != outLost {
		t.Errorf("a connection closed after the request: outcome %d", o)
	}
}
