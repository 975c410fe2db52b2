package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
)

// MinRSABits is the smallest RSA key the package accepts, as browsers and
// public CAs require.
const MinRSABits = 2048

// maxKeyDER bounds the DER size of a private key block before it is parsed
// (an RSA key is validated with big-number arithmetic whose cost grows
// faster than its size): 10 KiB holds a 16384-bit RSA key.
const maxKeyDER = 10 << 10

// KeyPair is a validated serving certificate.
type KeyPair struct {
	// Cert is ready for tls.Config.Certificates; its Leaf is set.
	Cert tls.Certificate
	// Leaf is the server's own certificate, the first of the chain.
	Leaf *x509.Certificate
	// CertPEM is the chain as PEM, leaf first, normalised: only its
	// CERTIFICATE blocks, without headers or text between them.
	CertPEM []byte
	// KeyPEM is the private key as one PEM block, without other blocks
	// (such as EC PARAMETERS) or text.
	KeyPEM []byte
}

// SHA256 returns the hex SHA-256 fingerprint of the leaf's DER bytes
// (lowercase, no colons), as openssl x509 -fingerprint -sha256 prints it
// without the colons.
func (k *KeyPair) SHA256() string { return Fingerprint(k.Leaf.Raw) }

// Fingerprint returns the hex SHA-256 of a certificate's DER bytes, as
// KeyPair.SHA256 and driver.TLSStatus give it.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParseKeyPair validates a user's certificate chain and private key, as
// given to enable_ssl (ssl_cert_pem_file, ssl_key_pem_file, ssl_cname).
//
// certSrc and keySrc name where the bytes came from, for messages, such as
// `ssl_cert_pem_file "/tmp/c.pem"`. Every error is an
// errcode.InvalidArgument that starts with the source at fault and names the
// value and the rule.
//
// certPEM holds the chain: the server's certificate (the leaf) first, then
// the certificates that issued it. Only its CERTIFICATE blocks are used;
// other blocks and text outside blocks, such as openssl's "Bag Attributes"
// and "subject=" lines, are ignored, but a BEGIN line that does not start a
// well-formed block (a truncated file) is an error. keyPEM holds one
// unencrypted private key: RSA (at least MinRSABits), ECDSA (P-256, P-384
// or P-521) or Ed25519, in PKCS#1 ("RSA PRIVATE KEY"), SEC1 ("EC PRIVATE
// KEY") or PKCS#8 ("PRIVATE KEY") form; other blocks beside it, such as the
// EC PARAMETERS of openssl ecparam, are ignored. Each input is at most
// MaxPEMSize bytes.
//
// The key must belong to the leaf, now (unless zero: a server that serves
// what it was given, expired or not) must lie within the leaf's
// NotBefore..NotAfter, and a leaf that restricts its extended key usage must
// allow serverAuth. name, when not empty, must be covered by the leaf as
// x509.Certificate.VerifyHostname decides: a DNS name of its
// subjectAltName, wildcards included, or one of its IP addresses. The chain
// is not verified against any root: that is the clients' business.
func ParseKeyPair(certPEM, keyPEM []byte, certSrc, keySrc, name string, now time.Time) (*KeyPair, error) {
	if certSrc == "" {
		certSrc = "certificate"
	}
	if keySrc == "" {
		keySrc = "private key"
	}
	chain, err := parseChain(certPEM)
	if err != nil {
		return nil, invalid("%s: %v", certSrc, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, invalid("%s: %v", keySrc, err)
	}
	leaf := chain[0].cert
	if !samePublicKey(leaf.PublicKey, key.signer.Public()) {
		for i, c := range chain[1:] {
			if samePublicKey(c.cert.PublicKey, key.signer.Public()) {
				return nil, invalid("%s: the private key belongs to certificate %d (line %d, %s) of %s, not to its first: the chain must start with the server's own certificate, followed by its issuers",
					keySrc, i+2, c.line, subjectOf(c.cert), certSrc)
			}
		}
		return nil, invalid("%s: the private key (%s) does not match the certificate in %s (%s, public key %s): they are not one key pair",
			keySrc, describeKey(key.signer.Public()), certSrc, subjectOf(leaf), describeKey(leaf.PublicKey))
	}
	if !now.IsZero() {
		if err := checkValidity(leaf, now); err != nil {
			return nil, invalid("%s: %v", certSrc, err)
		}
	}
	if !serverAuthAllowed(leaf) {
		return nil, invalid("%s: the certificate (%s) is not for TLS servers: its extended key usage allows %s but not serverAuth",
			certSrc, subjectOf(leaf), extKeyUsages(leaf))
	}
	if name != "" {
		if err := leaf.VerifyHostname(name); err != nil {
			return nil, invalid("%s: the certificate (%s) does not cover the name %q: %s",
				certSrc, subjectOf(leaf), name, coveredNames(leaf))
		}
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.cert.Raw
	}
	return newKeyPair(ders, leaf, key.signer, &pem.Block{Type: key.label, Bytes: key.der}), nil
}

// newKeyPair assembles a KeyPair from checked parts.
func newKeyPair(ders [][]byte, leaf *x509.Certificate, key crypto.Signer, keyBlock *pem.Block) *KeyPair {
	var certPEM []byte
	for _, der := range ders {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return &KeyPair{
		Cert:    tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		Leaf:    leaf,
		CertPEM: certPEM,
		KeyPEM:  pem.EncodeToMemory(keyBlock),
	}
}

func invalid(format string, args ...any) error {
	return errcode.Errorf(errcode.InvalidArgument, format, args...)
}

// chainCert is a parsed certificate and the line its block starts on.
type chainCert struct {
	cert *x509.Certificate
	line int
}

// parseChain returns the certificates of data's CERTIFICATE blocks, in
// order; there is at least one.
func parseChain(data []byte) ([]chainCert, error) {
	blocks, err := decodeAll(data)
	if err != nil {
		return nil, err
	}
	var chain []chainCert
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d (line %d) is not a valid X.509 certificate: %v", len(chain)+1, b.line, err)
		}
		chain = append(chain, chainCert{cert: c, line: b.line})
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s", noBlock(data, blocks, "CERTIFICATE"))
	}
	return chain, nil
}

// privateKey is a parsed private key with its DER form and the PEM label of
// that form.
type privateKey struct {
	signer crypto.Signer
	der    []byte
	label  string
	line   int
}

// parseKey returns the one private key of data.
func parseKey(data []byte) (*privateKey, error) {
	blocks, err := decodeAll(data)
	if err != nil {
		return nil, err
	}
	var keys []block
	for _, b := range blocks {
		if b.Type == "PRIVATE KEY" || strings.HasSuffix(b.Type, " PRIVATE KEY") {
			keys = append(keys, b)
		}
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf("%s", noBlock(data, blocks, "private key"))
	case len(keys) > 1:
		return nil, fmt.Errorf("holds %d private key blocks (lines %d and %d): it must hold exactly one", len(keys), keys[0].line, keys[1].line)
	}
	b := keys[0]
	if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") || b.Headers["DEK-Info"] != "" {
		return nil, fmt.Errorf("line %d: the %s is encrypted; encrypted private keys are not supported: decrypt it first (openssl pkey -in encrypted.pem -out key.pem)", b.line, shorten(b.Type, 40))
	}
	if len(b.Bytes) > maxKeyDER {
		return nil, fmt.Errorf("line %d: the %s is %d bytes of DER; at most %d are accepted (an RSA key of 16384 bits)", b.line, shorten(b.Type, 40), len(b.Bytes), maxKeyDER)
	}
	// The label says the form; a mislabelled key is still tried in the
	// other two forms, as crypto/tls does.
	forms := []struct {
		label, name string
		parse       func([]byte) (any, error)
	}{
		{"RSA PRIVATE KEY", "PKCS#1", func(d []byte) (any, error) { return untyped(x509.ParsePKCS1PrivateKey(d)) }},
		{"EC PRIVATE KEY", "SEC1", func(d []byte) (any, error) { return untyped(x509.ParseECPrivateKey(d)) }},
		{"PRIVATE KEY", "PKCS#8", x509.ParsePKCS8PrivateKey},
	}
	first := -1
	for i, f := range forms {
		if f.label == b.Type {
			first = i
		}
	}
	if first < 0 {
		return nil, fmt.Errorf("line %d: a %s block is not supported: give an RSA, ECDSA or Ed25519 key as RSA PRIVATE KEY (PKCS#1), EC PRIVATE KEY (SEC1) or PRIVATE KEY (PKCS#8), e.g. with openssl pkey -in key -out key.pem",
			b.line, shorten(b.Type, 40))
	}
	key, firstErr := forms[first].parse(b.Bytes)
	label := forms[first].label
	if firstErr != nil {
		key = nil
		for i, f := range forms {
			if i == first {
				continue
			}
			if k, err := f.parse(b.Bytes); err == nil {
				key, label = k, f.label
				break
			}
		}
		if key == nil {
			return nil, fmt.Errorf("line %d: the %s block is not a valid %s private key: %v", b.line, b.Type, forms[first].name, firstErr)
		}
	}
	signer, err := checkKeyType(key)
	if err != nil {
		return nil, fmt.Errorf("line %d: %v", b.line, err)
	}
	return &privateKey{signer: signer, der: b.Bytes, label: label, line: b.line}, nil
}

// untyped returns k as an interface that is nil when err is not, rather
// than holding a typed nil pointer.
func untyped[K any](k K, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return k, nil
}

// checkKeyType accepts the keys crypto/tls serves with.
func checkKeyType(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return nil, fmt.Errorf("the RSA key has %d bits; at least %d are required", bits, MinRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, fmt.Errorf("the ECDSA key is on curve %s; TLS needs P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("a %s key is not supported: give an RSA, ECDSA or Ed25519 key", keyTypeName(key))
}

func keyTypeName(key any) string {
	s := fmt.Sprintf("%T", key)
	s = strings.TrimPrefix(s, "*")
	switch s {
	case "ecdh.PrivateKey":
		return "X25519 (ecdh)"
	}
	return s
}

func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// describeKey names a public key's type and size: "RSA 2048-bit",
// "ECDSA P-256", "Ed25519".
func describeKey(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", pub), "*")
}

// subjectOf names a certificate for messages.
func subjectOf(c *x509.Certificate) string {
	return fmt.Sprintf("subject %q", shorten(c.Subject.String(), 120))
}

// checkValidity checks that now lies in c's validity period.
func checkValidity(c *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("the certificate (%s) is not valid before %s (now is %s)",
			subjectOf(c), c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return fmt.Errorf("the certificate (%s) expired on %s (now is %s)",
			subjectOf(c), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func serverAuthAllowed(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageClientAuth:      "clientAuth",
	x509.ExtKeyUsageCodeSigning:     "codeSigning",
	x509.ExtKeyUsageEmailProtection: "emailProtection",
	x509.ExtKeyUsageTimeStamping:    "timeStamping",
	x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
}

func extKeyUsages(c *x509.Certificate) string {
	var names []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := extKeyUsageNames[u]; ok {
			names = append(names, n)
		} else {
			names = append(names, fmt.Sprintf("usage %d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		names = append(names, oid.String())
	}
	if len(names) > 8 {
		names = append(names[:8], "...")
	}
	return strings.Join(names, ", ")
}

// coveredNames lists the names a certificate is valid for, for messages.
func coveredNames(c *x509.Certificate) string {
	var names []string
	for _, n := range c.DNSNames {
		names = append(names, shorten(n, 100))
	}
	for _, ip := range c.IPAddresses {
		names = append(names, net.IP(ip).String())
	}
	if len(names) == 0 {
		cn := ""
		if c.Subject.CommonName != "" {
			cn = fmt.Sprintf(" (its common name %q is not used by TLS clients)", shorten(c.Subject.CommonName, 100))
		}
		return "it names no DNS names or IP addresses in its subject alternative names" + cn
	}
	const most = 20
	more := ""
	if len(names) > most {
		more = fmt.Sprintf(" and %d more", len(names)-most)
		names = names[:most]
	}
	return "it covers " + strings.Join(names, ", ") + more
}
