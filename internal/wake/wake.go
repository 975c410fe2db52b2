package wake

import (
	"context"
	"sync"
	"time"
)

// Broadcaster fans "something may have changed" signals out to
// subscribers. The zero value is ready to use; it is safe for concurrent
// use.
type Broadcaster struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives a value after each Notify
// until ctx ends. Values coalesce: the channel holds at most one, standing
// for any number of Notify calls since it was last read. When ctx ends the
// subscription is dropped (the channel is not closed).
func (b *Broadcaster) Subscribe(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan struct{}]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	})
	return ch
}

// Notify wakes every subscriber; it never blocks.
func (b *Broadcaster) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribers reports how many subscriptions are live.
func (b *Broadcaster) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Until calls check until it reports done or fails, calling it again each
// time changes delivers a value and, as a fallback for changes the backend
// does not signal, every poll (poll ≤ 0 means no fallback; a nil changes
// means polling only). It returns check's error, or ctx's error once ctx
// ends. Subscribe to changes before calling Until so that no change
// between the subscription and the first check is missed.
func Until(ctx context.Context, changes <-chan struct{}, poll time.Duration, check func() (done bool, err error)) error {
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		done, err := check()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changes:
		case <-tick:
		}
	}
}
