package drivertest

import (
	"sync/atomic"
	"time"
)

// OffsetClock is the real clock moved forward by Advance. Harnesses of
// backends that run on real time (a Kubernetes control plane) give it to
// the backend's time-based decisions — crash-loop, image-pull and
// unschedulable thresholds, token expiry — so Harness.Advance can make
// minutes pass for them while everything else keeps real time. The zero
// value is the real clock.
type OffsetClock struct{ off atomic.Int64 }

// Now is the real time plus every Advance so far.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Since is Now minus t.
func (c *OffsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Advance moves the clock forward by d.
func (c *OffsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }
