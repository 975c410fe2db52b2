package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/webservice"
)

// heartbeat is how often a terminal sees a long operation's line again
// while its state does not change.
const heartbeat = 3 * time.Second

// progress shows a long operation on stderr, as show_output=True does: on
// a terminal one line rewritten in place with the state, the reason and the
// elapsed time, refreshed every few seconds; otherwise a timestamped line
// per change of state.
type progress struct {
	a          *app
	what       string
	began      time.Time
	last       string
	lastShown  time.Time
	onTerminal bool
	shown      bool
}

func (a *app) newProgress(what string) *progress {
	return &progress{a: a, what: what, began: a.now(), onTerminal: a.isTerminal}
}

// state reports the operation's current state and why.
func (p *progress) state(state, reason string) {
	now := p.a.now()
	line := state
	if reason != "" {
		line += ": " + reason
	}
	changed := line != p.last
	p.last = line
	elapsed := now.Sub(p.began).Round(100 * time.Millisecond)
	if p.onTerminal {
		if changed || now.Sub(p.lastShown) >= heartbeat {
			fmt.Fprintf(p.a.stderr, "\r\033[K%s %s (%s)", p.what, line, elapsed)
			p.lastShown, p.shown = now, true
		}
		return
	}
	if changed {
		fmt.Fprintf(p.a.stderr, "%s %s %s (%s)\n", now.UTC().Format(time.RFC3339), p.what, line, elapsed)
	}
}

// done ends the progress line on a terminal.
func (p *progress) done() {
	if p.onTerminal && p.shown {
		fmt.Fprintln(p.a.stderr)
	}
}

// waitService waits for a deployment or update to end, showing its state
// and reason (Unschedulable with the scheduler's message as soon as the
// cluster reports it).
func (a *app) waitService(ctx context.Context, svc *webservice.Service) error {
	p := a.newProgress("service " + svc.Name())
	defer p.done()
	for {
		st, err := svc.Status(ctx)
		if err != nil {
			return err
		}
		p.state(string(st.State), st.Message)
		switch st.State {
		case driver.Healthy:
			return nil
		case driver.Failed:
			// The library's error names the state, the reason and the
			// replicas' last log lines.
			return svc.WaitForDeployment(ctx)
		}
		select {
		case <-ctx.Done():
			return svc.WaitForDeployment(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
