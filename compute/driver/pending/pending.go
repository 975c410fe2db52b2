package pending

import (
	"context"
	"fmt"
	"sync"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
)

// Func is the slow part of a Provision: it creates the cluster and returns
// it attached. Its context is canceled when the pending cluster is detached
// or deleted; it should then stop soon and return.
type Func func(ctx context.Context) (driver.Cluster, error)

// Options are the provider's hooks; nil means defaults.
type Options struct {
	// Delete removes the cluster once the work has stopped. ready is what
	// the work produced, nil when it failed or was stopped, so Delete must
	// remove a half-created cluster by name. Default: ready.Delete, or
	// nothing without ready.
	Delete func(ctx context.Context, ready driver.Cluster) error
	// Forget runs once, after a Detach or Delete that succeeded, for the
	// provider to drop the name.
	Forget func()
}

// Cluster is a driver.Cluster being provisioned. It is safe for
// concurrent use.
type Cluster struct {
	name  string
	shape driver.ClusterShape
	opts  Options
	stop  context.CancelFunc
	done  chan struct{}

	mu      sync.Mutex
	state   driver.ProvisioningState
	err     error
	ready   driver.Cluster
	stopped bool // Detach or Delete asked the work to stop
	forgot  bool
	tls     *driver.TLS // SetTLS before the cluster was ready
	tlsSet  bool
}

var _ driver.Cluster = (*Cluster)(nil)

// Start runs work in a new goroutine and returns the cluster at once, in
// state Creating. The work's context carries ctx's values but not its
// deadline or cancellation: Provision's ctx bounds the call, not the
// create; Detach and Delete stop it.
func Start(ctx context.Context, name string, shape driver.ClusterShape, work Func, opts *Options) *Cluster {
	c := &Cluster{name: name, shape: shape, done: make(chan struct{}), state: driver.StateCreating}
	if opts != nil {
		c.opts = *opts
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = stop
	go func() {
		defer close(c.done)
		defer stop()
		ready, err := work(wctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err == nil && ready == nil:
			c.state, c.err = driver.StateFailed, errcode.Errorf(errcode.Internal, "cluster %s: provisioning returned no cluster", name)
		case err == nil:
			c.ready = ready
			if c.tlsSet {
				// SetTLS came while provisioning: the front end
				// serves it before the cluster is Succeeded.
				if terr := ready.SetTLS(wctx, c.tls); terr != nil {
					c.state, c.err = driver.StateFailed, fmt.Errorf("cluster %s: TLS: %w", name, terr)
				}
			}
			if c.state == driver.StateCreating {
				c.state = driver.StateSucceeded
			}
		case c.stopped:
			if c.state == driver.StateCreating {
				c.state = driver.StateCanceled
			}
			c.err = errcode.Errorf(errcode.FailedPrecondition, "cluster %s: provisioning was stopped: %w", name, err)
		default:
			c.state, c.err = driver.StateFailed, err
		}
	}()
	return c
}

// Name is the compute target name.
func (c *Cluster) Name() string { return c.name }

// Done is closed when the background work has ended.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Wait blocks until the work ends and returns nil when the cluster is
// Succeeded, else the error that ended it, as the work returned it (an
// ARM refusal keeps its code); DeadlineExceeded if ctx ends first.
func (c *Cluster) Wait(ctx context.Context) error {
	select {
	case <-c.done:
	case <-ctx.Done():
		return errcode.Errorf(errcode.DeadlineExceeded, "waiting for cluster %s to be provisioned: %w", c.name, ctx.Err())
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = c.Ready()
	return err
}

// Ready returns the provisioned cluster; FailedPrecondition naming the
// state while it is Creating, or once it Failed, was Canceled or is being
// deleted.
func (c *Cluster) Ready() (driver.Cluster, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == driver.StateSucceeded && c.ready != nil:
		return c.ready, nil
	case c.state == driver.StateCreating:
		return nil, errcode.Errorf(errcode.FailedPrecondition, "cluster %s is still Creating; wait for provisioning to finish", c.name)
	case c.err != nil:
		return nil, errcode.Errorf(errcode.FailedPrecondition, "cluster %s is %s: %v", c.name, c.state, c.err)
	}
	return nil, errcode.Errorf(errcode.FailedPrecondition, "cluster %s is %s", c.name, c.state)
}

// Status reports Creating (with the requested shape) while the work runs,
// Failed or Canceled with the error text once it ended so, Deleting during
// and after Delete, and the provisioned cluster's own status once
// Succeeded.
func (c *Cluster) Status(ctx context.Context) (driver.ClusterStatus, error) {
	c.mu.Lock()
	state, err, ready := c.state, c.err, c.ready
	c.mu.Unlock()
	if state == driver.StateSucceeded && ready != nil {
		return ready.Status(ctx)
	}
	st := driver.ClusterStatus{State: state, Shape: c.shape}
	if err != nil {
		st.Errors = []string{err.Error()}
	}
	return st, nil
}

// SetTLS sets the front end's certificate: on the provisioned cluster, or,
// while provisioning, once it is ready (a failure then fails the cluster).
func (c *Cluster) SetTLS(ctx context.Context, t *driver.TLS) error {
	c.mu.Lock()
	r := c.ready
	if r == nil && c.state == driver.StateCreating {
		c.tls, c.tlsSet = t, true
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	r, err := c.Ready()
	if err != nil {
		return err
	}
	return r.SetTLS(ctx, t)
}

// ApplyService applies spec on the provisioned cluster.
func (c *Cluster) ApplyService(ctx context.Context, spec *driver.ServiceSpec) error {
	r, err := c.Ready()
	if err != nil {
		return err
	}
	return r.ApplyService(ctx, spec)
}

// DeleteService deletes a service on the provisioned cluster.
func (c *Cluster) DeleteService(ctx context.Context, name string) error {
	r, err := c.Ready()
	if err != nil {
		return err
	}
	return r.DeleteService(ctx, name)
}

// ServiceStatus reports a service on the provisioned cluster.
func (c *Cluster) ServiceStatus(ctx context.Context, name string) (*driver.ServiceStatus, error) {
	r, err := c.Ready()
	if err != nil {
		return nil, err
	}
	return r.ServiceStatus(ctx, name)
}

// ServiceLogs reads a service's logs on the provisioned cluster.
func (c *Cluster) ServiceLogs(ctx context.Context, name string, tail int, init bool) ([]string, error) {
	r, err := c.Ready()
	if err != nil {
		return nil, err
	}
	return r.ServiceLogs(ctx, name, tail, init)
}

// IssueToken issues a token on the provisioned cluster.
func (c *Cluster) IssueToken(ctx context.Context, name string) (driver.Token, error) {
	r, err := c.Ready()
	if err != nil {
		return driver.Token{}, err
	}
	return r.IssueToken(ctx, name)
}

// Watch wakes once when provisioning ends and then relays the provisioned
// cluster's Watch; see driver.Cluster.
func (c *Cluster) Watch(ctx context.Context) <-chan struct{} {
	if r, err := c.Ready(); err == nil {
		return r.Watch(ctx)
	}
	ch := make(chan struct{}, 1)
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
		}
		ch <- struct{}{}
		r, err := c.Ready()
		if err != nil {
			return
		}
		inner := r.Watch(ctx)
		if inner == nil {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-inner:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

// halt asks the work to stop and waits for its goroutine to end (or ctx).
func (c *Cluster) halt(ctx context.Context, deleting bool) (driver.Cluster, error) {
	c.mu.Lock()
	c.stopped = true
	if deleting {
		c.state = driver.StateDeleting
	}
	c.mu.Unlock()
	c.stop()
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, errcode.Errorf(errcode.DeadlineExceeded, "cluster %s: waiting for provisioning to stop: %w", c.name, ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready, nil
}

func (c *Cluster) forget() {
	c.mu.Lock()
	first := !c.forgot
	c.forgot = true
	c.mu.Unlock()
	if first && c.opts.Forget != nil {
		c.opts.Forget()
	}
}

// Detach stops provisioning if it still runs, waits for it to stop, and
// detaches the cluster it produced (a cluster still being created by its
// platform is left to it). The provider forgets the name.
func (c *Cluster) Detach(ctx context.Context) error {
	ready, err := c.halt(ctx, false)
	if err != nil {
		return err
	}
	if ready != nil {
		if err := ready.Detach(ctx); err != nil {
			return err
		}
	}
	c.forget()
	return nil
}

// Delete stops provisioning if it still runs, waits for it to stop, and
// deletes the cluster (Options.Delete); Status reports Deleting from the
// start. The provider forgets the name.
func (c *Cluster) Delete(ctx context.Context) error {
	ready, err := c.halt(ctx, true)
	if err != nil {
		return err
	}
	del := c.opts.Delete
	if del == nil {
		del = func(ctx context.Context, r driver.Cluster) error {
			if r == nil {
				return nil
			}
			return r.Delete(ctx)
		}
	}
	if err := del(ctx, ready); err != nil {
		return err
	}
	c.forget()
	return nil
}

// String names the cluster and its state.
func (c *Cluster) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("cluster %s (%s)", c.name, c.state)
}
