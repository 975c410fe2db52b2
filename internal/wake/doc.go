// Package wake lets waits be woken by the backend instead of polling: a
// Broadcaster that backends notify when something may have changed, and
// Until, the wait loop that re-checks on each notification and polls only
// as a fallback at a period the caller chooses.
package wake
