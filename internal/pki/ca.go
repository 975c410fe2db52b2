package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
)

// backdate is how far before now issued certificates start, so that a
// client whose clock is a little behind accepts them.
const backdate = time.Minute

// CA is a certificate authority that issues serving certificates: a
// workspace's own CA, used for leaf_domain_label and local clusters. Its
// key is ECDSA P-256. A CA is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// NewCA makes a new CA key and a self-signed CA certificate with the given
// common name, valid from now-1min to now+validity. The certificate may
// sign server certificates only (path length 0).
func NewCA(commonName string, now time.Time, validity time.Duration) (*CA, error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, errcode.Errorf(errcode.InvalidArgument, "CA common name %q is empty", commonName)
	}
	if len(commonName) > 64 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "CA common name %q is %d bytes long; X.509 allows at most 64", shorten(commonName, 70), len(commonName))
	}
	if validity <= 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "CA validity %v is not positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "CA %q: generating the key: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "CA %q: %w", commonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate).UTC().Truncate(time.Second),
		NotAfter:              now.Add(validity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "CA %q: signing the certificate: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "CA %q: reading back the certificate: %w", commonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "CA %q: encoding the key: %w", commonName, err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ParseCA loads a CA from the PEM that CertPEM and KeyPEM returned; src
// names the source for errors, such as `workspace CA "/ws/pki"`. The
// certificate PEM must hold exactly one CERTIFICATE block, a CA certificate
// allowed to sign certificates; the key PEM follows ParseKeyPair's rules and
// must match it. The CA's validity is not checked here: Issue does that.
// Every error is an errcode.InvalidArgument naming src.
func ParseCA(certPEM, keyPEM []byte, src string) (*CA, error) {
	if src == "" {
		src = "CA"
	}
	chain, err := parseChain(certPEM)
	if err != nil {
		return nil, invalid("%s: certificate: %v", src, err)
	}
	if len(chain) != 1 {
		return nil, invalid("%s: certificate: holds %d certificates (lines %d and %d); a CA certificate PEM holds exactly one",
			src, len(chain), chain[0].line, chain[1].line)
	}
	cert := chain[0].cert
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, invalid("%s: certificate: %s is not a CA certificate (its basic constraints do not say CA:TRUE)", src, subjectOf(cert))
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, invalid("%s: certificate: %s may not sign certificates (its key usage lacks keyCertSign)", src, subjectOf(cert))
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, invalid("%s: key: %v", src, err)
	}
	if !samePublicKey(cert.PublicKey, key.signer.Public()) {
		return nil, invalid("%s: key: the private key (%s) does not match the CA certificate (%s, public key %s)",
			src, describeKey(key.signer.Public()), subjectOf(cert), describeKey(cert.PublicKey))
	}
	return &CA{
		cert:    cert,
		key:     key.signer,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: key.label, Bytes: key.der}),
	}, nil
}

// CertPEM returns the CA certificate as one PEM block: what clients add to
// their trusted roots.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// KeyPEM returns the CA's private key as PEM (PKCS#8 for a CA NewCA made).
func (ca *CA) KeyPEM() []byte { return append([]byte(nil), ca.keyPEM...) }

// Cert returns the CA certificate. The caller must not modify it.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// Issue makes a new ECDSA P-256 key and a certificate for names, signed by
// the CA. Each name is a DNS name (a leftmost "*" label makes a wildcard) or
// an IP address, which becomes an IP SAN. The first name is also the
// subject's common name (unless it is longer than the 64 bytes X.509
// allows; TLS clients use only the SANs). The certificate is valid from
// now-1min to now+validity, cut at the CA's NotAfter; it has key usage
// digitalSignature, extended key usage serverAuth and a random 128-bit
// serial number. The KeyPair's CertPEM holds the leaf, then the CA
// certificate.
//
// Invalid names or a non-positive validity give errcode.InvalidArgument; a
// CA that is not valid at now gives errcode.FailedPrecondition.
func (ca *CA) Issue(names []string, now time.Time, validity time.Duration) (*KeyPair, error) {
	if len(names) == 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "a certificate needs at least one name; none given")
	}
	var dns []string
	var ips []net.IP
	var errs []string
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := checkDNSName(n); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		dns = append(dns, n)
	}
	if len(errs) > 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s", strings.Join(errs, "; "))
	}
	if validity <= 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "certificate validity %v is not positive", validity)
	}
	caName := ca.cert.Subject.CommonName
	switch {
	case now.Before(ca.cert.NotBefore):
		return nil, errcode.Errorf(errcode.FailedPrecondition, "CA %q is not valid before %s (now is %s)",
			caName, ca.cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !now.Before(ca.cert.NotAfter):
		return nil, errcode.Errorf(errcode.FailedPrecondition, "CA %q expired on %s (now is %s): make a new CA",
			caName, ca.cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	notBefore := now.Add(-backdate).UTC().Truncate(time.Second)
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	notAfter := now.Add(validity).UTC().Truncate(time.Second)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "generating a key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "%w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	if len(names[0]) <= 64 {
		tmpl.Subject.CommonName = names[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "CA %q: signing a certificate for %s: %w", caName, strings.Join(names, ", "), err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "CA %q: reading back a certificate: %w", caName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "encoding a key: %w", err)
	}
	return newKeyPair([][]byte{der, ca.cert.Raw}, leaf, key, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// checkDNSName accepts host names of letters, digits, '-' and '_' labels of
// 1 to 63 bytes, at most 253 bytes in all, with an optional leftmost "*"
// label.
func checkDNSName(n string) error {
	if n == "" {
		return fmt.Errorf("name %q is empty", n)
	}
	if len(n) > 253 {
		return fmt.Errorf("name %q is %d bytes long; DNS names are at most 253", shorten(n, 70), len(n))
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 {
			return fmt.Errorf("name %q is not a DNS name or IP address: each dot-separated label must be 1 to 63 bytes", n)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("name %q is not a DNS name or IP address: %q is not a letter, digit, '-' or '_' (only a whole leftmost label may be \"*\")", n, r)
			}
		}
	}
	return nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("making a serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
