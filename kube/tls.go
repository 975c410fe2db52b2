package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
)

// The front end's certificate (enable_ssl). SetTLS writes it as the Secret
// FrontEndTLSSecret in the front end's namespace, of type kubernetes.io/tls
// (tls.crt, tls.key) with the CA bundle clients should trust in
// TLSSecretCAKey and the name clients reach the front end by in the
// annotation AnnotationTLSCName; the front end (kube/fe) watches it.
const (
	// FrontEndTLSSecret is the Secret of the front end's certificate,
	// named as azureml-fe's.
	FrontEndTLSSecret = "azuremlfessl"
	// TLSSecretCAKey holds the PEM certificates clients should trust
	// beyond the system's roots (driver.TLS.CABundle); it may be empty.
	TLSSecretCAKey = "ca.crt"
	// AnnotationTLSCName is the DNS name clients reach the front end by:
	// the host of the https scoring URIs.
	AnnotationTLSCName = "aksml.io/cname"
	// FrontEndTLSPort is the port aksml-fe serves HTTPS on in its pod;
	// the front end's Service exposes it on port 443.
	FrontEndTLSPort = 9443
	// maxTLSSecretBytes bounds what ParseTLSSecret reads: the API server
	// caps a Secret at 1 MiB.
	maxTLSSecretBytes = 1 << 20
)

// FrontEndTLS is the front end's certificate as its Secret holds it.
type FrontEndTLS struct {
	// CName is the name clients reach the front end by.
	CName string
	// Certificate is the chain and key, ready for a tls.Config; its Leaf
	// is set.
	Certificate tls.Certificate
	// CABundle is what clients should trust beyond the system's roots.
	CABundle []byte
}

// SHA256 is the hex SHA-256 fingerprint of the leaf certificate's DER
// bytes, as driver.TLSStatus gives it.
func (t *FrontEndTLS) SHA256() string { return pki.Fingerprint(t.Certificate.Leaf.Raw) }

// ParseTLSSecret reads the front end's certificate from s, the Secret
// FrontEndTLSSecret: the annotation AnnotationTLSCName, a certificate chain
// and its private key in tls.crt and tls.key, and an optional PEM CA bundle
// in ca.crt. Errors are InvalidArgument and name the Secret, the field and
// the problem.
func ParseTLSSecret(s *corev1.Secret) (*FrontEndTLS, error) {
	if s == nil {
		return nil, errcode.New(errcode.InvalidArgument, "front-end TLS secret: nil")
	}
	where := "secret " + s.Namespace + "/" + s.Name
	var errs []error
	cname := s.Annotations[AnnotationTLSCName]
	if err := checkCName(cname); err != nil {
		errs = append(errs, fmt.Errorf("annotation %s %q: %w", AnnotationTLSCName, cname, err))
	}
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, TLSSecretCAKey} {
		if len(s.Data[k]) > maxTLSSecretBytes {
			errs = append(errs, fmt.Errorf("%s is %d bytes, over the limit of %d", k, len(s.Data[k]), maxTLSSecretBytes))
		}
	}
	if len(errs) > 0 {
		return nil, errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("%s: %w", where, errors.Join(errs...)))
	}
	// pki's parser, not tls.X509KeyPair: it bounds the key's size, so a
	// hostile Secret cannot make the front end spend minutes on an RSA key.
	// The dates are not checked: the front end serves what it is given.
	kp, err := pki.ParseKeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey], where+" "+corev1.TLSCertKey, where+" "+corev1.TLSPrivateKeyKey, "", time.Time{})
	if err != nil {
		return nil, err
	}
	cert := kp.Cert
	ca := s.Data[TLSSecretCAKey]
	if len(ca) > 0 && !x509.NewCertPool().AppendCertsFromPEM(ca) {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s: %s holds no PEM certificate", where, TLSSecretCAKey)
	}
	return &FrontEndTLS{CName: cname, Certificate: cert, CABundle: ca}, nil
}

// checkCName accepts a DNS name (letters, digits, hyphens and dots, labels
// of 1 to 63 characters, 253 at most) or an IP address.
func checkCName(n string) error {
	switch {
	case n == "":
		return errors.New("is empty: the scoring URIs need the name clients reach the front end by")
	case net.ParseIP(n) != nil:
		return nil
	case len(n) > 253:
		return errors.New("is longer than 253 characters")
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return errors.New("must be a DNS name: dot-separated labels of 1 to 63 characters")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("must be a DNS name: %q is not a letter, digit or hyphen", r)
			}
		}
	}
	return nil
}

// HTTPSBase is the base of the scoring URIs with TLS on: https://CNAME,
// with :PORT unless port is 443.
func HTTPSBase(cname string, port int) string {
	if port == 443 {
		return "https://" + cname
	}
	return "https://" + net.JoinHostPort(cname, strconv.Itoa(port))
}

// SetTLS makes the front end serve HTTPS with t's certificate: it writes
// the Secret FrontEndTLSSecret in Options.FrontEndNamespace (server-side
// apply, so it creates or replaces it), which the front end watches; nil
// deletes the Secret, and the front end serves plain HTTP only again. A
// certificate that does not parse or does not match its key, or a missing
// or malformed CName, is InvalidArgument. The front end presents a new
// certificate within its watch latency; Status reports it once a handshake
// with the front end presents it.
func (c *Cluster) SetTLS(ctx context.Context, t *driver.TLS) error {
	ns := c.opts.FrontEndNamespace
	secrets := c.client.CoreV1().Secrets(ns)
	if t == nil {
		err := secrets.Delete(ctx, FrontEndTLSSecret, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError(err, "compute target %q: delete secret %s/%s", c.name, ns, FrontEndTLSSecret)
		}
		return nil
	}
	var errs []error
	if err := checkCName(t.CName); err != nil {
		errs = append(errs, fmt.Errorf("ssl_cname %q %w", t.CName, err))
	}
	if _, err := pki.ParseKeyPair(t.CertPEM, t.KeyPEM, "certificate", "key", "", time.Time{}); err != nil {
		errs = append(errs, fmt.Errorf("the certificate and key for %q do not make a key pair: %w", t.CName, err))
	}
	if len(t.CABundle) > 0 && !x509.NewCertPool().AppendCertsFromPEM(t.CABundle) {
		errs = append(errs, fmt.Errorf("the CA bundle for %q holds no PEM certificate", t.CName))
	}
	if len(errs) > 0 {
		return errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("compute target %q: TLS: %w", c.name, errors.Join(errs...)))
	}
	if err := c.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	sa := corev1ac.Secret(FrontEndTLSSecret, ns).
		WithLabels(map[string]string{LabelManagedBy: ManagedBy, "app": FrontEndName}).
		WithAnnotations(map[string]string{AnnotationTLSCName: t.CName}).
		WithType(corev1.SecretTypeTLS).
		WithData(map[string][]byte{
			corev1.TLSCertKey:       t.CertPEM,
			corev1.TLSPrivateKeyKey: t.KeyPEM,
			TLSSecretCAKey:          t.CABundle,
		})
	if _, err := secrets.Apply(ctx, sa, c.applyOpts()); err != nil {
		if !apierrors.IsInvalid(err) {
			return apiError(err, "compute target %q: apply secret %s/%s", c.name, ns, FrontEndTLSSecret)
		}
		// A Secret of that name but another type (the type cannot
		// change): replace it.
		if derr := secrets.Delete(ctx, FrontEndTLSSecret, metav1.DeleteOptions{}); derr != nil && !apierrors.IsNotFound(derr) {
			return apiError(derr, "compute target %q: replace secret %s/%s", c.name, ns, FrontEndTLSSecret)
		}
		if _, err := secrets.Apply(ctx, sa, c.applyOpts()); err != nil {
			return apiError(err, "compute target %q: apply secret %s/%s", c.name, ns, FrontEndTLSSecret)
		}
	}
	return nil
}

// frontEndTLS reads the front end's certificate from its Secret: nil when
// there is none; an error when it cannot be read or does not parse.
func (c *Cluster) frontEndTLS(ctx context.Context) (*FrontEndTLS, error) {
	s, err := c.client.CoreV1().Secrets(c.opts.FrontEndNamespace).Get(ctx, FrontEndTLSSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, apiError(err, "compute target %q: front-end TLS secret", c.name)
	}
	if s.DeletionTimestamp != nil {
		return nil, nil
	}
	return ParseTLSSecret(s)
}

// bases are the cluster's front-end addresses.
type bases struct {
	http    string       // plain HTTP base URL
	scoring string       // base of scoring URIs: https://CNAME[:PORT] with TLS on
	tls     *FrontEndTLS // the certificate configured, or nil
	addr    string       // where the HTTPS port is reached, with TLS on
}

// scoringBases reads the front end's plain address and its certificate
// Secret. A Secret that does not parse counts as none (the front end
// then keeps what it served) and is returned as the error.
func (c *Cluster) scoringBases(ctx context.Context) (bases, error) {
	b := bases{http: c.scoringBase(ctx)}
	b.scoring = b.http
	t, err := c.frontEndTLS(ctx)
	if err != nil || t == nil {
		return b, err
	}
	b.tls = t
	b.addr = c.scoringTLSAddress(ctx)
	port := 443
	if _, p, err := net.SplitHostPort(b.addr); err == nil {
		port, _ = strconv.Atoi(p)
	}
	b.scoring = HTTPSBase(t.CName, port)
	return b, nil
}

// scoringTLSAddress is where clients reach the front end's HTTPS port:
// Options.ScoringTLSAddress, else port 443 of the host of the plain
// address.
func (c *Cluster) scoringTLSAddress(ctx context.Context) string {
	if c.opts.ScoringTLSAddress != "" {
		return c.opts.ScoringTLSAddress
	}
	u, err := url.Parse(c.scoringBase(ctx))
	if err != nil || u.Hostname() == "" {
		return ""
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// tlsStatus fills st's addresses and certificate. With a certificate
// Secret, it asks the front end which certificate it presents (a
// handshake with ScoringTLSAddress, giving the CName for SNI): TLS is
// reported once it presents one, that one (the previous certificate
// while the front end has not yet picked up a new Secret); while it
// presents none, the cluster serves plain HTTP. A front end that cannot
// be reached from here is taken to serve the Secret's certificate.
func (c *Cluster) tlsStatus(ctx context.Context, st *driver.ClusterStatus) {
	b, err := c.scoringBases(ctx)
	st.HTTPBaseURL, st.ScoringBaseURL = b.http, b.http
	if err != nil {
		st.Errors = append(st.Errors, err.Error())
		c.opts.Logger.Warn("kube: front-end TLS secret", "cluster", c.name, "err", err)
	}
	if b.tls == nil {
		return
	}
	ts := &driver.TLSStatus{CName: b.tls.CName, NotAfter: b.tls.Certificate.Leaf.NotAfter, SHA256: b.tls.SHA256(), CABundle: b.tls.CABundle}
	if b.addr != "" && !c.unreachable(b.addr) {
		leaf, err := probeTLS(ctx, b.addr, b.tls.CName)
		var ne net.Error
		var oe *net.OpError
		switch {
		case err == nil:
			ts.SHA256, ts.NotAfter = pki.Fingerprint(leaf.Raw), leaf.NotAfter
		case errors.As(err, &oe) && oe.Op == "dial", errors.As(err, &ne) && ne.Timeout():
			// Not reachable from here: the Secret is all we know.
			// Status stays quick: no probe for a while.
			c.mu.Lock()
			c.probeOff = probeOff{addr: b.addr, until: time.Now().Add(probeBackOff)}
			c.mu.Unlock()
		default:
			// Reachable, but no certificate yet: plain HTTP only.
			return
		}
	}
	st.TLS = ts
	st.ScoringBaseURL = b.scoring
	st.ScoringAddress = b.addr
}

// probeBackOff is how long Status goes without probing a front end it
// could not reach.
const probeBackOff = 30 * time.Second

// probeOff is a front end Status could not reach, not probed until until.
type probeOff struct {
	addr  string
	until time.Time
}

// unreachable reports whether addr failed a probe less than probeBackOff
// ago.
func (c *Cluster) unreachable(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.probeOff.addr == addr && time.Now().Before(c.probeOff.until)
}

// probeTLS returns the leaf certificate the front end at addr presents
// for name. It reads the certificate without verifying it: the caller
// compares fingerprints.
func probeTLS(ctx context.Context, addr, name string) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // only the fingerprint is read
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate presented")
	}
	return certs[0], nil
}
