package simulator

import (
	"context"
	"net/http"
	"time"
)

var probeClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}

// probeDue runs the liveness probes that are due: GET / on every starting or
// ready replica, from initial_delay_seconds after its start, every
// period_seconds, each with timeout_seconds. failure_threshold failures in
// a row restart the replica (as a kubelet does); success_threshold successes
// reset the count. Caller holds c.mu; probes run in their own goroutines.
func (c *Cluster) probeDue(now time.Time) {
	for _, s := range c.services {
		for _, v := range s.versions {
			for _, r := range v.replicas {
				if (r.state != replicaStarting && r.state != replicaReady) || r.inst == nil || r.probe.inFlight {
					continue
				}
				p := r.tmpl.Probe
				if p.Period <= 0 || now.Before(r.probe.next) {
					continue
				}
				r.probe.inFlight = true
				r.probe.next = now.Add(p.Period)
				inst := r.inst
				c.wg.Add(1)
				c.probeWG.Add(1)
				go func() {
					defer c.wg.Done()
					defer c.probeWG.Done()
					ok := probeOnce(inst.url, p.Timeout)
					c.probed(r, inst, ok)
				}()
			}
		}
	}
}

func probeOnce(url string, timeout time.Duration) bool {
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
	if err != nil {
		return false
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

func (c *Cluster) probed(r *replica, inst *instance, ok bool) {
	c.mu.Lock()
	r.probe.inFlight = false
	if r.inst != inst || c.stopped {
		c.mu.Unlock()
		return
	}
	p := r.tmpl.Probe
	if ok {
		r.probe.successes++
		if r.probe.successes >= max(p.SuccessThreshold, 1) {
			r.probe.failures = 0
		}
		c.mu.Unlock()
		return
	}
	r.probe.successes = 0
	r.probe.failures++
	kill := r.probe.failures >= max(p.FailureThreshold, 1)
	if kill {
		r.lastErr = "Liveness probe failed: GET / did not answer 200"
	}
	c.mu.Unlock()
	if kill {
		c.opts.Logger.Info("liveness probe failed, restarting", "replica", r.id)
		inst.stop(false)
	}
}
