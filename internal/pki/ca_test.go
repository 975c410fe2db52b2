package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
)

func TestCARoundTrip(t *testing.T) {
	t.Parallel()
	made, err := pki.NewCA("aksml workspace CA", now, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.ParseCA(made.CertPEM(), made.KeyPEM(), `workspace CA "/ws/pki"`)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert().Equal(made.Cert()) || !bytes.Equal(ca.CertPEM(), made.CertPEM()) || !bytes.Equal(ca.KeyPEM(), made.KeyPEM()) {
		t.Fatalf("ParseCA(CertPEM, KeyPEM) is not the CA that made them")
	}
	c := ca.Cert()
	if c.Subject.CommonName != "aksml workspace CA" || !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: subject %q, IsCA %v, key usage %v", c.Subject, c.IsCA, c.KeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if !c.NotBefore.Equal(now.Add(-time.Minute)) || !c.NotAfter.Equal(now.Add(10*365*24*time.Hour)) {
		t.Errorf("CA valid %v to %v", c.NotBefore, c.NotAfter)
	}

	names := []string{"scoring.example.com", "*.apps.example.com", "10.0.0.4", "::1"}
	kp, err := ca.Issue(names, now, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := kp.Leaf
	if leaf.Subject.CommonName != "scoring.example.com" || !slices.Equal(leaf.DNSNames, names[:2]) ||
		len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.4")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("leaf: CN %q, DNS %q, IPs %v", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Minute)) || !leaf.NotAfter.Equal(now.Add(90*24*time.Hour)) {
		t.Errorf("leaf valid %v to %v", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
		t.Errorf("leaf: key usage %v, extended %v, IsCA %v", leaf.KeyUsage, leaf.ExtKeyUsage, leaf.IsCA)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", leaf.SerialNumber)
	}
	// CertPEM: leaf, then the CA.
	b1, rest := pem.Decode(kp.CertPEM)
	b2, rest := pem.Decode(rest)
	if b1 == nil || b2 == nil || !bytes.Equal(b1.Bytes, leaf.Raw) || !bytes.Equal(b2.Bytes, ca.Cert().Raw) || len(rest) != 0 {
		t.Errorf("CertPEM is not the leaf then the CA:\n%s", kp.CertPEM)
	}

	// The issued files pass the user-file checks for each of their names.
	for _, n := range append(names[:1], "models.apps.example.com", "10.0.0.4", "::1") {
		back, err := pki.ParseKeyPair(kp.CertPEM, kp.KeyPEM, "cert", "key", n, now)
		if err != nil {
			t.Fatalf("ParseKeyPair of an issued pair, name %q: %v", n, err)
		}
		if back.SHA256() != kp.SHA256() || !bytes.Equal(back.CertPEM, kp.CertPEM) || !bytes.Equal(back.KeyPEM, kp.KeyPEM) {
			t.Errorf("ParseKeyPair changed the issued pair")
		}
	}

	// A client trusting only the CA verifies the leaf; one trusting nothing does not.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert())
	opts := x509.VerifyOptions{Roots: pool, DNSName: "scoring.example.com", CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		t.Errorf("Verify against the CA: %v", err)
	}
	opts.Roots = x509.NewCertPool()
	var ua x509.UnknownAuthorityError
	if _, err := leaf.Verify(opts); !errors.As(err, &ua) {
		t.Errorf("Verify against an empty pool: %v, want an x509.UnknownAuthorityError", err)
	}

	// Serial numbers differ.
	kp2, err := ca.Issue(names[:1], now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if kp2.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 || kp2.SHA256() == kp.SHA256() {
		t.Errorf("two issued certificates share serial %v", leaf.SerialNumber)
	}
}

func TestIssueCappedAtCAExpiry(t *testing.T) {
	t.Parallel()
	ca, err := pki.NewCA("short CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue([]string{"a.example.com"}, now.Add(30*time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Leaf.NotAfter.Equal(ca.Cert().NotAfter) {
		t.Errorf("leaf NotAfter %v, want the CA's %v", kp.Leaf.NotAfter, ca.Cert().NotAfter)
	}
	// Issued just after the CA starts: the leaf does not start before it.
	kp, err = ca.Issue([]string{"a.example.com"}, now.Add(-30*time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Leaf.NotBefore.Equal(ca.Cert().NotBefore) {
		t.Errorf("leaf NotBefore %v, want the CA's %v", kp.Leaf.NotBefore, ca.Cert().NotBefore)
	}
}

func TestIssueRejects(t *testing.T) {
	t.Parallel()
	ca, err := pki.NewCA("aksml test CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		names    []string
		at       time.Time
		validity time.Duration
		code     *errcode.Code
		want     string
	}{
		{name: "no names", code: errcode.InvalidArgument, want: "at least one name; none given"},
		{name: "empty name", names: []string{"a.example.com", ""}, code: errcode.InvalidArgument, want: `name "" is empty`},
		{name: "space", names: []string{"a b.example.com"}, code: errcode.InvalidArgument, want: `name "a b.example.com" is not a DNS name or IP address: ' ' is not a letter`},
		{name: "empty label", names: []string{"a..example.com"}, code: errcode.InvalidArgument, want: "each dot-separated label must be 1 to 63 bytes"},
		{name: "inner wildcard", names: []string{"a.*.example.com"}, code: errcode.InvalidArgument, want: `name "a.*.example.com" is not a DNS name`},
		{name: "bare wildcard", names: []string{"*"}, code: errcode.InvalidArgument, want: `name "*" is not a DNS name`},
		{name: "too long", names: []string{strings.Repeat("a.", 127) + "com"}, code: errcode.InvalidArgument, want: "DNS names are at most 253"},
		{name: "every bad name", names: []string{"a b", "ok.example.com", "c_d!"}, code: errcode.InvalidArgument, want: `name "a b" is not a DNS name or IP address: ' ' is not a letter, digit, '-' or '_' (only a whole leftmost label may be "*"); name "c_d!"`},
		{name: "zero validity", names: []string{"a.example.com"}, validity: -1, code: errcode.InvalidArgument, want: "certificate validity -1ns is not positive"},
		{name: "CA expired", names: []string{"a.example.com"}, at: now.Add(25 * time.Hour), code: errcode.FailedPrecondition,
			want: `CA "aksml test CA" expired on 2026-12-03T10:00:00Z (now is 2026-12-03T11:00:00Z)`},
		{name: "CA not yet valid", names: []string{"a.example.com"}, at: now.Add(-time.Hour), code: errcode.FailedPrecondition,
			want: `CA "aksml test CA" is not valid before 2026-12-02T09:59:00Z`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			at, validity := tc.at, tc.validity
			if at.IsZero() {
				at = now
			}
			if validity == 0 {
				validity = time.Hour
			}
			kp, err := ca.Issue(tc.names, at, validity)
			if err == nil || kp != nil {
				t.Fatalf("Issue(%q) succeeded", tc.names)
			}
			if !errors.Is(err, tc.code) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q (%v)\nwant %v containing %q", err, errcode.Of(err), tc.code, tc.want)
			}
		})
	}
}

func TestNewCARejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cn       string
		validity time.Duration
		want     string
	}{
		{cn: " ", validity: time.Hour, want: `CA common name " " is empty`},
		{cn: strings.Repeat("x", 65), validity: time.Hour, want: "is 65 bytes long; X.509 allows at most 64"},
		{cn: "ca", validity: 0, want: "CA validity 0s is not positive"},
	} {
		ca, err := pki.NewCA(tc.cn, now, tc.validity)
		if ca != nil || !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(fmtErr(err), tc.want) {
			t.Errorf("NewCA(%q, %v) = %v, %v; want InvalidArgument containing %q", tc.cn, tc.validity, ca, err, tc.want)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestParseCARejects(t *testing.T) {
	t.Parallel()
	const src = `workspace CA "/ws/pki"`
	ca, err := pki.NewCA("aksml test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue([]string{"a.example.com"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := kp.CertPEM[:bytes.Index(kp.CertPEM, []byte("-----END"))+len("-----END CERTIFICATE-----\n")]
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")})

	tests := []struct {
		name      string
		cert, key []byte
		want      []string
	}{
		{name: "empty certificate", key: ca.KeyPEM(), want: []string{src + ": certificate: is empty"}},
		{name: "empty key", cert: ca.CertPEM(), want: []string{src + ": key: is empty"}},
		{name: "swapped", cert: ca.KeyPEM(), key: ca.CertPEM(), want: []string{src + ": certificate: no PEM CERTIFICATE block found (found: PRIVATE KEY)"}},
		{name: "truncated", cert: ca.CertPEM()[:60], key: ca.KeyPEM(), want: []string{src + ": certificate: line 1:", "does not begin a well-formed PEM block"}},
		{name: "two certificates", cert: append(ca.CertPEM(), other.CertPEM()...), key: ca.KeyPEM(), want: []string{src + ": certificate: holds 2 certificates (lines 1 and ", "exactly one"}},
		{name: "not a CA", cert: leafPEM, key: kp.KeyPEM, want: []string{src + `: certificate: subject "CN=a.example.com" is not a CA certificate`}},
		{name: "other key", cert: ca.CertPEM(), key: other.KeyPEM(), want: []string{src + `: key: the private key (ECDSA P-256) does not match the CA certificate (subject "CN=aksml test CA"`}},
		{name: "encrypted key", cert: ca.CertPEM(), key: encrypted, want: []string{src + ": key: line 1: the ENCRYPTED PRIVATE KEY is encrypted", "decrypt it first"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := pki.ParseCA(tc.cert, tc.key, src)
			if got != nil {
				t.Errorf("got a CA with the error")
			}
			checkInvalid(t, err, src, tc.want...)
		})
	}
}

// A CA certificate someone else made, with a key usage that does not allow
// signing certificates, is refused.
func TestParseCAKeyUsage(t *testing.T) {
	t.Parallel()
	key := newECKey(t, elliptic.P256())
	c := makeCert(t, certSpec{cn: "odd CA", isCA: true, key: key})
	// makeCert's CAs may sign; make one that may not.
	tmpl := *c
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	_, err = pki.ParseCA(certPEM, pemKey(t, key, "sec1"), "CA")
	checkInvalid(t, err, "CA", `certificate: subject "CN=odd CA" may not sign certificates (its key usage lacks keyCertSign)`)

	// With the usage it is accepted, in SEC1 form, and issues.
	ca, err := pki.ParseCA(pemCerts(c), pemKey(t, key, "sec1"), "CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue([]string{"x.example.com"}, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ca.KeyPEM()), "EC PRIVATE KEY") {
		t.Errorf("KeyPEM changed the key's form:\n%s", ca.KeyPEM())
	}
}
