package pki_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// now is the fixed "current time" of the tests.
var now = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// rsaKey is one 2048-bit RSA key for the whole test binary: generating
// RSA keys is slow.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newECKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certSpec describes a test certificate; zero fields take defaults.
type certSpec struct {
	cn                  string
	dns                 []string
	ips                 []net.IP
	notBefore, notAfter time.Time
	eku                 []x509.ExtKeyUsage
	isCA                bool
	key                 crypto.Signer     // the certificate's key; default: rsaKey()
	parent              *x509.Certificate // default: self-signed
	parentKey           crypto.Signer
}

// makeCert returns a certificate made from spec.
func makeCert(t testing.TB, s certSpec) *x509.Certificate {
	t.Helper()
	if s.key == nil {
		s.key = rsaKey()
	}
	if s.notBefore.IsZero() {
		s.notBefore = now.Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = now.Add(24 * time.Hour)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.cn},
		DNSNames:     s.dns,
		IPAddresses:  s.ips,
		NotBefore:    s.notBefore,
		NotAfter:     s.notAfter,
		ExtKeyUsage:  s.eku,
	}
	if s.isCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	}
	parent, parentKey := tmpl, s.key
	if s.parent != nil {
		parent, parentKey = s.parent, s.parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, s.key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pemCerts encodes certificates as PEM, in order.
func pemCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// pemKey encodes key in form "pkcs1", "sec1" or "pkcs8".
func pemKey(t testing.TB, key crypto.Signer, form string) []byte {
	t.Helper()
	var b *pem.Block
	var err error
	var der []byte
	switch form {
	case "pkcs1":
		b = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))}
	case "sec1":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		b = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	case "pkcs8":
		der, err = x509.MarshalPKCS8PrivateKey(key)
		b = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	default:
		t.Fatalf("unknown key form %q", form)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(b)
}

// fixture is a user's certificate as a public CA would issue it: an RSA
// leaf signed by an ECDSA intermediate.
type fixture struct {
	ca, leaf *x509.Certificate
	caKey    *ecdsa.PrivateKey
	chain    []byte // leaf, then ca
	key      []byte // leaf's key, PKCS#1
}

var fixtureOnce sync.Map // testing.TB-independent cache keyed by nothing

func newFixture(t testing.TB) *fixture {
	t.Helper()
	if f, ok := fixtureOnce.Load("f"); ok {
		return f.(*fixture)
	}
	caKey := newECKey(t, elliptic.P256())
	ca := makeCert(t, certSpec{cn: "Test Issuing CA", isCA: true, key: caKey, notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(365 * 24 * time.Hour)})
	leaf := makeCert(t, certSpec{
		cn:        "scoring.example.com",
		dns:       []string{"scoring.example.com", "*.apps.example.com"},
		ips:       []net.IP{net.ParseIP("10.0.0.4")},
		eku:       []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		parent:    ca,
		parentKey: caKey,
	})
	f := &fixture{ca: ca, leaf: leaf, caKey: caKey, chain: pemCerts(leaf, ca), key: pemKey(t, rsaKey(), "pkcs1")}
	v, _ := fixtureOnce.LoadOrStore("f", f)
	return v.(*fixture)
}
