package simulator

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
)

// tlsFront is a simulated cluster's HTTPS front end: a second loopback
// listener served by the router's TLS engine, as azureml-fe's port 443
// beside its port 80.
type tlsFront struct {
	ln     net.Listener
	base   string // https://CNAME:PORT
	status driver.TLSStatus
}

// SetTLS serves HTTPS with t's certificate on a listener of its own (made
// on first use, kept for the cluster's life); plain HTTP then answers 308
// to it. The scoring URIs become https://CNAME:PORT/...; CNAME is in no
// DNS, so clients dial ScoringAddress. A new certificate applies to new
// handshakes at once; nil turns HTTPS off.
func (c *Cluster) SetTLS(ctx context.Context, t *driver.TLS) error {
	if t == nil {
		c.mu.Lock()
		front := c.tls
		if front != nil {
			c.tls = &tlsFront{ln: front.ln}
		}
		c.mu.Unlock()
		c.router.SetHTTPSRedirect("")
		c.router.SetCertificate(nil)
		c.changes.Notify()
		return nil
	}
	// pki's parser, as the kube backend's: it bounds the key's size; the
	// dates are compute's to check, the front end serves what it is given.
	kp, err := pki.ParseKeyPair(t.CertPEM, t.KeyPEM, "certificate", "key", "", time.Time{})
	if err != nil {
		return errcode.Errorf(errcode.InvalidArgument, "cluster %s: TLS certificate for %q: %v", c.name, t.CName, err)
	}
	cert := kp.Cert
	if t.CName == "" {
		return errcode.Errorf(errcode.InvalidArgument, "cluster %s: TLS certificate without a CName: the scoring URIs need the name", c.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errcode.Errorf(errcode.FailedPrecondition, "cluster %s is deleted", c.name)
	}
	if c.tls == nil || c.tls.ln == nil {
		ln, err := net.Listen("tcp", net.JoinHostPort(c.opts.Address, "0"))
		if err != nil {
			return errcode.Wrap(errcode.Unavailable, fmt.Errorf("simulated cluster %q: HTTPS front end cannot listen: %w", c.name, err))
		}
		c.tls = &tlsFront{ln: ln}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = c.router.ServeTLS(ln)
		}()
	}
	_, port, _ := net.SplitHostPort(c.tls.ln.Addr().String())
	base := "https://" + net.JoinHostPort(t.CName, port)
	if port == "443" {
		base = "https://" + t.CName
	}
	c.tls = &tlsFront{ln: c.tls.ln, base: base, status: driver.TLSStatus{
		CName: t.CName, NotAfter: cert.Leaf.NotAfter, SHA256: kp.SHA256(),
		CABundle: append([]byte(nil), t.CABundle...),
	}}
	c.router.SetCertificate(&cert)
	c.router.SetHTTPSRedirect(base)
	c.changes.Notify()
	return nil
}

// scoringBase is the base of scoring URIs: https://CNAME:PORT with TLS on,
// else the plain address. Called with c.mu held.
func (c *Cluster) scoringBase() string {
	if c.tls != nil && c.tls.base != "" {
		return c.tls.base
	}
	return c.baseURL
}

// tlsStatus fills st's addresses and certificate. Called with c.mu held.
func (c *Cluster) tlsStatus(st *driver.ClusterStatus) {
	st.HTTPBaseURL = c.baseURL
	st.ScoringBaseURL = c.scoringBase()
	st.ScoringAddress = c.ln.Addr().String()
	if c.tls != nil && c.tls.base != "" {
		s := c.tls.status
		st.TLS = &s
		st.ScoringAddress = c.tls.ln.Addr().String()
	}
}
