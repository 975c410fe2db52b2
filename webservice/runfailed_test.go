package webservice_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simtest"
	"github.com/aksml/aksml/webservice"
)

// An exception in run() is Internal — the same input fails again — not
// Unavailable, which invites retries; the error says which version answered.
func TestRunFailureIsInternal(t *testing.T) {
	env := simtest.New(t, nil)
	svc := env.DeployHandler("broken", func() scoring.Handler {
		return scoring.HandlerFunc(func(context.Context, []byte) ([]byte, error) { return nil, errors.New("division by zero") })
	})
	_, err := svc.Run(env.Ctx, `{"data": [1]}`)
	if !errors.Is(err, errcode.Internal) || errors.Is(err, errcode.Unavailable) {
		t.Fatalf("Run of a failing handler: %v, want Internal", err)
	}
	var re *webservice.ResponseError
	if !errors.As(err, &re) || !re.RunFailed || re.StatusCode != 502 || re.ServedBy == "" {
		t.Errorf("ResponseError = %+v, want RunFailed, 502 and the version that answered", re)
	}
	ok := env.DeployHandler("okay", func() scoring.Handler {
		return scoring.HandlerFunc(func(_ context.Context, in []byte) ([]byte, error) { return in, nil })
	})
	out, served, err := webservice.ScoreServed(env.Ctx, nil, ok.ScoringURI(), `{"a": 1}`, func(ctx context.Context, _ bool) (string, error) {
		p, _, err := ok.Keys(ctx)
		return p, err
	})
	if err != nil || string(out) != `{"a": 1}` || served == "" {
		t.Errorf("ScoreServed = %s, %q, %v; want the echo and the version", out, served, err)
	}
}
