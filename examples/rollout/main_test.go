package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRollout runs the example with 200 requests a step and checks what it
// prints: no failed request, and per step exactly the split the weights
// ask for (the router's split is exact over the requests since the weights
// changed), with latency percentiles for each version that served.
func TestRollout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, 200, 4); err != nil {
		t.Fatalf("rollout: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	const ms = `\d+\.\d\dms`
	for _, want := range []string{
		`registered models churn:1 and churn:2`,
		`endpoint churn: versions \[stable canary\], scoring URI http://127\.0\.0\.1:\d+/api/v1/service/churn/score`,
		`step 1: canary at 10%: 200 requests, 0 failed`,
		`  stable +90% +180 +90\.0% +0 +` + ms + ` +` + ms,
		`  canary +10% +20 +10\.0% +0 +` + ms + ` +` + ms,
		`step 2: canary at 50%: 200 requests, 0 failed`,
		`  stable +50% +100 +50\.0% +0 +` + ms + ` +` + ms,
		`  canary +50% +100 +50\.0% +0 +` + ms + ` +` + ms,
		`step 3: canary at 100%: 200 requests, 0 failed`,
		`  stable +0% +0 +0\.0% +0 +- +-`,
		`  canary +100% +200 +100\.0% +0 +` + ms + ` +` + ms,
		`canary is the default; stable deleted; versions \[canary\]`,
		`score: \{"churn_probability":\[0\.\d+,0\.\d+\],"model":"churn:2"\}`,
	} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(got) {
			t.Errorf("output lacks a line matching %s\noutput:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 16 {
		t.Errorf("output has %d lines, want 16:\n%s", n, got)
	}
}
