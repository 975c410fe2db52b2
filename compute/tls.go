package compute

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
)

// TLS on the front end (enable_ssl). compute turns a target's SSLConfig
// into the certificate its cluster serves (driver.TLS):
//
//   - your own certificate: CertFile and KeyFile are read and checked — the
//     key matches the certificate, CName is among its names, it is valid
//     now — and served for CName;
//   - LeafDomainLabel: Azure issued a certificate for
//     LABEL######.REGION.cloudapp.azure.com; aksml issues one for that name
//     from the workspace's own CA (kept as a workspace record, so every
//     process and every target of the workspace shares it), and clients
//     trust it through CABundle.
//
// The scoring URIs then start with https://CNAME; a simulator's or local
// cluster's CNAME is in no DNS, and the clients the library makes (Run,
// the CLI) dial the front end's address for it (driver.Transport).

const (
	// caKind and caName address the workspace CA's record.
	caKind = "tls-ca"
	caName = "workspace"
	// caValidity and leafValidity: the workspace CA lasts ten years; the
	// certificates it issues one, like a public CA's.
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// ExpiryWarning is how long before its certificate expires a target's
	// Warnings say so.
	ExpiryWarning = 30 * 24 * time.Hour
)

// caRecord is the stored form of the workspace CA.
type caRecord struct {
	CertPEM string    `json:"certPem"`
	KeyPEM  string    `json:"keyPem"`
	Created time.Time `json:"createdOn"`
}

// workspaceCA returns the workspace's CA, creating it on first use. Two
// processes creating it at once agree on the first one stored.
func workspaceCA(ctx context.Context, store Store) (*pki.CA, error) {
	for attempt := 0; ; attempt++ {
		b, err := store.Get(ctx, caKind, caName)
		if err == nil {
			var rec caRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				return nil, errcode.Wrap(errcode.Internal, fmt.Errorf("the workspace CA record (%s/%s) is corrupt: %w", caKind, caName, err))
			}
			return pki.ParseCA([]byte(rec.CertPEM), []byte(rec.KeyPEM), "the workspace CA record")
		}
		if !errors.Is(err, errcode.NotFound) || attempt > 0 {
			return nil, err
		}
		now := time.Now()
		ca, err := pki.NewCA("aksml workspace CA", now, caValidity)
		if err != nil {
			return nil, err
		}
		b, err = json.Marshal(caRecord{CertPEM: string(ca.CertPEM()), KeyPEM: string(ca.KeyPEM()), Created: now.UTC()})
		if err != nil {
			return nil, errcode.Wrap(errcode.Internal, err)
		}
		err = store.Create(ctx, caKind, caName, b)
		if err == nil {
			return ca, nil
		}
		if !errors.Is(err, errcode.AlreadyExists) {
			return nil, err
		}
		// Another process stored one first: use it.
	}
}

// CABundle returns the PEM certificate of the workspace's CA, made on
// first use. Trust it to call the services of targets whose certificate
// aksml issued (leaf_domain_label): Run and the CLI do; for curl, write it
// to a file and pass --cacert.
func CABundle(ctx context.Context, store Store) ([]byte, error) {
	ca, err := workspaceCA(ctx, store)
	if err != nil {
		return nil, err
	}
	return ca.CertPEM(), nil
}

// leafDomain is the name Azure gave a leaf_domain_label certificate:
// LABEL, six random lowercase letters and digits, the region and
// cloudapp.azure.com. A cluster without a region gets "local".
func leafDomain(label, location string) (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.WriteString(label)
	for range 6 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", errcode.Wrap(errcode.Internal, err)
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	region := strings.ToLower(strings.ReplaceAll(location, " ", ""))
	if region == "" {
		region = "local"
	}
	return b.String() + "." + region + ".cloudapp.azure.com", nil
}

// resolveTLS turns ssl (valid by SSLConfig.problems) into the certificate
// the front end serves, or nil when ssl is off. fqdn is the leaf domain
// the target already has (kept when the label is unchanged), "" for none;
// the returned name is the one served.
func resolveTLS(ctx context.Context, store Store, ssl SSLConfig, location, fqdn string, now time.Time) (*driver.TLS, error) {
	switch {
	case !ssl.Enabled():
		return nil, nil
	case ssl.LeafDomainLabel != "":
		if fqdn == "" || !strings.HasPrefix(fqdn, ssl.LeafDomainLabel) || len(fqdn) <= len(ssl.LeafDomainLabel)+6 || fqdn[len(ssl.LeafDomainLabel)+6] != '.' {
			var err error
			if fqdn, err = leafDomain(ssl.LeafDomainLabel, location); err != nil {
				return nil, err
			}
		}
		ca, err := workspaceCA(ctx, store)
		if err != nil {
			return nil, err
		}
		kp, err := ca.Issue([]string{fqdn}, now, leafValidity)
		if err != nil {
			return nil, err
		}
		return &driver.TLS{CName: fqdn, CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM, CABundle: ca.CertPEM()}, nil
	}
	certPEM, err := readPEMFile("ssl_cert_pem_file", ssl.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEMFile("ssl_key_pem_file", ssl.KeyFile)
	if err != nil {
		return nil, err
	}
	kp, err := pki.ParseKeyPair(certPEM, keyPEM,
		fmt.Sprintf("ssl_cert_pem_file %q", ssl.CertFile), fmt.Sprintf("ssl_key_pem_file %q", ssl.KeyFile), ssl.CName, now)
	if err != nil {
		return nil, err
	}
	return &driver.TLS{CName: ssl.CName, CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}, nil
}

// readPEMFile reads a certificate or key file given to enable_ssl.
func readPEMFile(field, path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s %q: %v", field, path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s %q: not a regular file", field, path)
	}
	if st.Size() > pki.MaxPEMSize {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s %q: %d bytes, more than the %d a PEM file may have", field, path, st.Size(), pki.MaxPEMSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s %q: %v", field, path, err)
	}
	return b, nil
}

// setTLS serves tc on a new cluster; nothing to do for a cluster without
// TLS.
func setTLS(ctx context.Context, cl driver.Cluster, tc *driver.TLS) error {
	if tc == nil {
		return nil
	}
	return cl.SetTLS(ctx, tc)
}

// leafFQDN is the name to record for tc: the leaf domain aksml issued.
func leafFQDN(ssl SSLConfig, tc *driver.TLS) string {
	if tc == nil || ssl.LeafDomainLabel == "" {
		return ""
	}
	return tc.CName
}

// applyTLS resolves ssl and sets it on the target's cluster, recording the
// name served.
func (t *Target) applyTLS(ctx context.Context, ssl SSLConfig, location string) error {
	tc, err := resolveTLS(ctx, t.store, ssl, location, t.rec.ClusterFQDN, time.Now())
	if err != nil {
		return err
	}
	if err := t.cluster.SetTLS(ctx, tc); err != nil {
		return err
	}
	t.rec.ClusterFQDN = leafFQDN(ssl, tc)
	return nil
}

// UpdateConfig is AksUpdateConfiguration: what Update changes on a target.
type UpdateConfig struct {
	// SSL replaces the front end's TLS setting (ssl_configuration); a zero
	// SSLConfig turns TLS off. nil leaves it as it is.
	SSL *SSLConfig
	// LoadBalancerType and LoadBalancerSubnet would move the front end to
	// another load balancer; no backend supports that yet.
	LoadBalancerType   LoadBalancerType
	LoadBalancerSubnet string
}

// Update changes the target's settings (AksCompute.update). A new
// certificate takes effect for new connections without restarting
// replicas, and connections open keep working: no request fails. The
// setting is validated as enable_ssl's (its files read and checked) before
// anything changes.
func (t *Target) Update(ctx context.Context, cfg UpdateConfig) error {
	if cfg.SSL == nil && cfg.LoadBalancerType == "" && cfg.LoadBalancerSubnet == "" {
		return errcode.New(errcode.InvalidArgument, "No parameters provided to update.")
	}
	if cfg.LoadBalancerType != "" || cfg.LoadBalancerSubnet != "" {
		return errcode.Errorf(errcode.Unimplemented, "compute target %q: load_balancer_type %q, load_balancer_subnet %q: changing the load balancer of an existing cluster is not supported; create a new target", t.rec.Name, cfg.LoadBalancerType, cfg.LoadBalancerSubnet)
	}
	lb, location := PublicIP, ""
	switch {
	case t.rec.Provisioning != nil:
		lb, location = t.rec.Provisioning.LoadBalancerType, t.rec.Provisioning.Location
	case t.rec.Attach != nil:
		lb = t.rec.Attach.LoadBalancerType
	}
	if err := errors.Join(cfg.SSL.problems(lb)...); err != nil {
		return err
	}
	if err := t.applyTLS(ctx, *cfg.SSL, location); err != nil {
		return fmt.Errorf("update compute target %q: %w", t.rec.Name, err)
	}
	t.forgetFrontEnd()
	switch {
	case t.rec.Provisioning != nil:
		t.rec.Provisioning.SSL = *cfg.SSL
	case t.rec.Attach != nil:
		t.rec.Attach.SSL = *cfg.SSL
	}
	b, err := json.Marshal(t.rec)
	if err != nil {
		return errcode.Wrap(errcode.Internal, err)
	}
	return t.store.Put(ctx, recordKind, t.rec.Name, b)
}

// Warnings returns advice about the target as it runs now: its
// certificate expires within ExpiryWarning, or has expired.
func (t *Target) Warnings(ctx context.Context) ([]Warning, error) {
	st, err := t.cluster.Status(ctx)
	if err != nil {
		return nil, err
	}
	return tlsWarnings(st.TLS, time.Now()), nil
}

func tlsWarnings(s *driver.TLSStatus, now time.Time) []Warning {
	if s == nil || s.NotAfter.IsZero() {
		return nil
	}
	left := s.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return []Warning{{Field: "ssl_configuration", Message: fmt.Sprintf(
			"the front end's TLS certificate for %s expired on %s: clients refuse it; give a new one with Update (AksCompute.update)", s.CName, s.NotAfter.UTC().Format(time.RFC3339))}}
	case left <= ExpiryWarning:
		return []Warning{{Field: "ssl_configuration", Message: fmt.Sprintf(
			"the front end's TLS certificate for %s expires on %s, in %d days: give a new one with Update (AksCompute.update)", s.CName, s.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))}}
	}
	return nil
}

// clientTTL is how long Client and ScoringBase trust the front end's
// address they last read; Update forgets it at once.
const clientTTL = 5 * time.Second

// frontEnd is what the target's clients need of its front end.
type frontEnd struct {
	client *http.Client
	base   string // ScoringBaseURL
	key    string
	read   time.Time
}

// Client returns an HTTP client for the target's front end: it dials the
// front end's address for its CNAME and trusts the workspace CA for a
// certificate aksml issued (driver.Transport). Service.Run and the CLI
// use it when given no client of their own.
func (t *Target) Client(ctx context.Context) (*http.Client, error) {
	fe, err := t.frontEnd(ctx)
	if err != nil {
		return nil, err
	}
	return fe.client, nil
}

// ScoringURI returns uri (a scoring or swagger URI recorded when a service
// was deployed) on the front end's current base: after Update turns TLS
// on, http://ADDRESS/api/... becomes https://CNAME/api/....
func (t *Target) ScoringURI(ctx context.Context, uri string) string {
	fe, err := t.frontEnd(ctx)
	if err != nil || fe.base == "" {
		return uri
	}
	_, rest, ok := strings.Cut(uri, "/api/")
	if !ok {
		return uri
	}
	return fe.base + "/api/" + rest
}

func (t *Target) frontEnd(ctx context.Context) (*frontEnd, error) {
	t.clientMu.Lock()
	defer t.clientMu.Unlock()
	now := time.Now()
	if t.fe != nil && now.Sub(t.fe.read) < clientTTL {
		return t.fe, nil
	}
	st, err := t.cluster.Status(ctx)
	if err != nil {
		return nil, err
	}
	key := st.ScoringBaseURL + "|" + st.ScoringAddress
	if st.TLS != nil {
		key += "|" + string(st.TLS.CABundle)
	}
	if t.fe != nil && t.fe.key == key {
		t.fe.read = now
		return t.fe, nil
	}
	tr, err := driver.Transport(st)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err)
	}
	if t.fe != nil {
		t.fe.client.CloseIdleConnections()
	}
	t.fe = &frontEnd{client: &http.Client{Transport: tr}, base: st.ScoringBaseURL, key: key, read: now}
	return t.fe, nil
}

// forgetFrontEnd makes the next Client read the front end again.
func (t *Target) forgetFrontEnd() {
	t.clientMu.Lock()
	defer t.clientMu.Unlock()
	if t.fe != nil {
		t.fe.read = time.Time{}
	}
}
