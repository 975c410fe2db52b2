package wake_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aksml/aksml/internal/wake"
)

// TestUntilWokenByNotify checks that a wait with no polling ends as soon as
// a notification follows the change, and checks once per notification.
func TestUntilWokenByNotify(t *testing.T) {
	var b wake.Broadcaster
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var state atomic.Int32
	checked := make(chan struct{}, 8)
	ch := b.Subscribe(ctx)
	done := make(chan error, 1)
	go func() {
		done <- wake.Until(ctx, ch, 0, func() (bool, error) {
			// Read the state before saying the check ran, so that the
			// check is always of the state before the test's next change.
			s := state.Load()
			checked <- struct{}{}
			return s == 2, nil
		})
	}()
	for range 2 {
		<-checked // the check before the change ran
		state.Add(1)
		b.Notify()
	}
	<-checked
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(checked); n != 0 {
		t.Errorf("%d checks more than the three for two notifications", n)
	}
}

func TestUntilEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := wake.Until(ctx, nil, 0, func() (bool, error) { return false, nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled wait: %v", err)
	}
	boom := errors.New("boom")
	if err := wake.Until(context.Background(), nil, 0, func() (bool, error) { return false, boom }); err != boom {
		t.Errorf("failing check: %v", err)
	}
	// Polling alone ends the wait when nothing notifies.
	n := 0
	if err := wake.Until(context.Background(), nil, time.Millisecond, func() (bool, error) { n++; return n == 3, nil }); err != nil || n != 3 {
		t.Errorf("polled wait: %v after %d checks", err, n)
	}
}

// TestCoalesce checks that notifications not yet read coalesce into one.
func TestCoalesce(t *testing.T) {
	var b wake.Broadcaster
	ctx, cancel := context.WithCancel(context.Background())
	ch := b.Subscribe(ctx)
	b.Notify()
	b.Notify() // coalesces with the first
	<-ch
	select {
	case <-ch:
		t.Fatal("two values for two notifications in a row; they should coalesce")
	default:
	}
	cancel()
}

func ExampleUntil() {
	var b wake.Broadcaster
	ctx := context.Background()
	var ready atomic.Bool
	changes := b.Subscribe(ctx) // before the first check
	go func() {
		ready.Store(true)
		b.Notify()
	}()
	err := wake.Until(ctx, changes, time.Minute, func() (bool, error) { return ready.Load(), nil })
	_ = err
	// Output:
}
