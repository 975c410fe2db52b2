package webservice

import (
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/internal/errcodetest"
)

func TestDeployConfigBatching(t *testing.T) {
	t.Parallel()
	in := `{"computeType": "aks", "maxConcurrentRequestsPerContainer": 32, "aksml": {"maxBatchSize": 16, "maxBatchDelayMs": 5}}`
	c, err := DecodeDeployConfig([]byte(in))
	if err != nil || c.MaxBatchSize != 16 || c.MaxBatchDelayMs != 5 {
		t.Fatalf("decode: %+v %v", c, err)
	}
	enc, err := EncodeDeployConfig(c)
	if err != nil || !strings.Contains(string(enc), `"aksml": {`) || !strings.Contains(string(enc), `"maxBatchSize": 16`) || !strings.Contains(string(enc), `"maxBatchDelayMs": 5`) {
		t.Errorf("encode: %s %v", enc, err)
	}
	if enc, _ := EncodeDeployConfig(DeployConfig{}); strings.Contains(string(enc), "aksml") {
		t.Errorf("batching off, yet the file has the extension:\n%s", enc)
	}
	e := c.Effective()
	if e.MaxBatchSize != 16 || e.MaxBatchDelay != 5*time.Millisecond {
		t.Errorf("effective: %d %v", e.MaxBatchSize, e.MaxBatchDelay)
	}
	// A worker serves a batch at a time: one per max_batch_size
	// concurrent requests, rounded up.
	for _, w := range []struct{ concurrent, size, workers int }{{32, 16, 2}, {32, 32, 1}, {33, 16, 3}, {1, 8, 1}} {
		v := DeployConfig{ReplicaMaxConcurrentRequests: w.concurrent, MaxBatchSize: w.size, MaxBatchDelayMs: 2}.Version("v", driver.ReplicaTemplate{})
		if v.Replica.Workers != w.workers || v.Replica.MaxBatchSize != w.size || v.Replica.MaxBatchDelay != 2*time.Millisecond {
			t.Errorf("%+v: workers %d, batch %d %v", w, v.Replica.Workers, v.Replica.MaxBatchSize, v.Replica.MaxBatchDelay)
		}
	}
	if v := (DeployConfig{ReplicaMaxConcurrentRequests: 4}).Version("v", driver.ReplicaTemplate{}); v.Replica.Workers != 4 || v.Replica.MaxBatchSize != 0 {
		t.Errorf("batching off: workers %d, batch %d", v.Replica.Workers, v.Replica.MaxBatchSize)
	}
	// An explicit delay of 0 is allowed: no waiting.
	if c, err := DecodeDeployConfig([]byte(`{"computeType": "aks", "aksml": {"maxBatchSize": 4, "maxBatchDelayMs": 0}}`)); err != nil || c.MaxBatchSize != 4 {
		t.Errorf("delay 0: %+v %v", c, err)
	}
}

func TestDeployConfigBatchingErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`{"aksml": {"maxBatchSize": 0}}`, []string{"aksml.maxBatchSize (max_batch_size) 0 must be greater than zero"}},
		{`{"aksml": {"maxBatchSize": 1025}}`, []string{"max_batch_size 1025 must be between 1 and 1024"}},
		{`{"aksml": {"maxBatchSize": -3}}`, []string{"max_batch_size -3 must be between 1 and 1024"}},
		{`{"aksml": {"maxBatchSize": 4, "maxBatchDelayMs": -1}}`, []string{"max_batch_delay_ms -1 must be between 0 and 10000"}},
		{`{"aksml": {"maxBatchSize": 4, "maxBatchDelayMs": 10001}}`, []string{"max_batch_delay_ms 10001 must be between 0 and 10000"}},
		{`{"aksml": {"maxBatchDelayMs": 5}}`, []string{"max_batch_delay_ms 5 given without max_batch_size"}},
		{`{"aksml": {"maxBatchSize": 2.5}}`, []string{"aksml.maxBatchSize (max_batch_size) 2.5 must be a whole number"}},
		{`{"aksml": {"maxBatchSize": "8"}}`, []string{`aksml.maxBatchSize must be a whole number, not a string "8"`}},
		{`{"aksml": {"batchSize": 8}}`, []string{"unknown field aksml.batchSize"}},
		{`{"aksml": 8}`, []string{"aksml must be a JSON object, not a number 8"}},
	} {
		_, err := DecodeDeployConfig([]byte(`{"computeType": "aks", ` + c.in[1:]))
		errcodetest.CheckInvalid(t, err, c.want, true)
	}
	errcodetest.CheckInvalid(t, DeployConfig{MaxBatchSize: 2000, MaxBatchDelayMs: 20000}.Validate(),
		[]string{"max_batch_size 2000 must be between 1 and 1024", "max_batch_delay_ms 20000 must be between 0 and 10000"}, true)
}
