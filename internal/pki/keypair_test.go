package pki_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
)

const (
	certSrc = `ssl_cert_pem_file "/x/c.pem"`
	keySrc  = `ssl_key_pem_file "/x/k.pem"`
)

// checkInvalid fails t unless err is an errcode.InvalidArgument whose
// message starts with src and contains every one of want.
func checkInvalid(t *testing.T, err error, src string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one from %s containing %q", src, want)
	}
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("error %q is %v, want InvalidArgument", err, errcode.Of(err))
	}
	if !strings.HasPrefix(err.Error(), src+": ") {
		t.Errorf("error %q does not start with its source %s", err, src)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestParseKeyPairRejects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	leafPEM := pemCerts(f.leaf)
	otherKey := pemKey(t, newECKey(t, elliptic.P256()), "sec1")
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	xKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xDER, err := x509.MarshalPKCS8PrivateKey(xKey)
	if err != nil {
		t.Fatal(err)
	}
	withKey := func(c certSpec) []byte { c.key = rsaKey(); return pemCerts(makeCert(t, c)) }
	block := func(typ string, headers map[string]string, b []byte) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: b})
	}

	tests := []struct {
		name      string
		cert, key []byte
		host      string
		at        time.Time
		src       string // the source the message must start with
		want      []string
	}{
		{name: "empty certificate", cert: nil, key: f.key, src: certSrc,
			want: []string{"is empty"}},
		{name: "blank key", cert: f.chain, key: []byte(" \n\t\n"), src: keySrc,
			want: []string{"is empty"}},
		{name: "key in the certificate's place", cert: f.key, key: f.key, src: certSrc,
			want: []string{"no PEM CERTIFICATE block found (found: RSA PRIVATE KEY)"}},
		{name: "certificate in the key's place", cert: f.chain, key: f.chain, src: keySrc,
			want: []string{"no PEM private key block found (found: CERTIFICATE)"}},
		{name: "plain text", cert: []byte("hello\n"), key: f.key, src: certSrc,
			want: []string{"no PEM CERTIFICATE block found (found: no PEM blocks)"}},
		{name: "DER certificate", cert: f.leaf.Raw, key: f.key, src: certSrc,
			want: []string{"no PEM CERTIFICATE block found", "binary DER", "openssl x509 -inform der"}},
		{name: "truncated certificate", cert: leafPEM[:len(leafPEM)/2], key: f.key, src: certSrc,
			want: []string{`line 1: "-----BEGIN CERTIFICATE-----" does not begin a well-formed PEM block`}},
		{name: "truncated block before a good one", cert: append(append([]byte("# comment\n"), leafPEM[:100]...), append([]byte("\n"), leafPEM...)...), key: f.key, src: certSrc,
			want: []string{`line 2: "-----BEGIN CERTIFICATE-----" does not begin a well-formed PEM block`}},
		{name: "mismatched END line", cert: bytes.Replace(leafPEM, []byte("END CERTIFICATE"), []byte("END CERTIFICAT"), 1), key: f.key, src: certSrc,
			want: []string{"line 1", "does not begin a well-formed PEM block"}},
		{name: "bad base64", cert: bytes.Replace(leafPEM, []byte("\n"), []byte("\n!!!!\n"), 2), key: f.key, src: certSrc,
			want: []string{"line 1", "does not begin a well-formed PEM block"}},
		{name: "not a certificate", cert: append(append([]byte{}, leafPEM...), block("CERTIFICATE", nil, []byte("junk"))...), key: f.key, src: certSrc,
			want: []string{"certificate 2 (line ", "is not a valid X.509 certificate"}},
		{name: "too large", cert: append(bytes.Repeat([]byte("# padding\n"), pki.MaxPEMSize/10), leafPEM...), key: f.key, src: certSrc,
			want: []string{"bytes; the limit is 1048576 bytes"}},
		{name: "encrypted PKCS#8 key", cert: f.chain, key: block("ENCRYPTED PRIVATE KEY", nil, []byte("x")), src: keySrc,
			want: []string{"ENCRYPTED PRIVATE KEY is encrypted", "encrypted private keys are not supported: decrypt it first (openssl pkey -in"}},
		{name: "encrypted legacy key", cert: f.chain,
			key: block("RSA PRIVATE KEY", map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, []byte("x")), src: keySrc,
			want: []string{"line 1: the RSA PRIVATE KEY is encrypted", "encrypted private keys are not supported: decrypt it first"}},
		{name: "two keys", cert: f.chain, key: append(append([]byte{}, f.key...), otherKey...), src: keySrc,
			want: []string{"holds 2 private key blocks (lines 1 and ", "exactly one"}},
		{name: "DSA key", cert: f.chain, key: block("DSA PRIVATE KEY", nil, []byte("x")), src: keySrc,
			want: []string{"a DSA PRIVATE KEY block is not supported", "RSA, ECDSA or Ed25519"}},
		{name: "OpenSSH key", cert: f.chain, key: block("OPENSSH PRIVATE KEY", nil, []byte("x")), src: keySrc,
			want: []string{"a OPENSSH PRIVATE KEY block is not supported"}},
		{name: "damaged key", cert: f.chain, key: block("RSA PRIVATE KEY", nil, []byte("junk")), src: keySrc,
			want: []string{"line 1: the RSA PRIVATE KEY block is not a valid PKCS#1 private key"}},
		{name: "huge key", cert: f.chain, key: block("PRIVATE KEY", nil, make([]byte, 11<<10)), src: keySrc,
			want: []string{"the PRIVATE KEY is 11264 bytes of DER; at most 10240"}},
		{name: "small RSA key", cert: f.chain, key: pemKey(t, smallRSA, "pkcs1"), src: keySrc,
			want: []string{"the RSA key has 1024 bits; at least 2048 are required"}},
		{name: "P-224 key", cert: f.chain, key: pemKey(t, newECKey(t, elliptic.P224()), "sec1"), src: keySrc,
			want: []string{"the ECDSA key is on curve P-224; TLS needs P-256, P-384 or P-521"}},
		{name: "X25519 key", cert: f.chain, key: block("PRIVATE KEY", nil, xDER), src: keySrc,
			want: []string{"a X25519 (ecdh) key is not supported"}},
		{name: "key of another certificate", cert: f.chain, key: otherKey, src: keySrc,
			want: []string{"the private key (ECDSA P-256) does not match the certificate in " + certSrc, `subject "CN=scoring.example.com"`, "RSA 2048-bit"}},
		{name: "issuer first", cert: pemCerts(f.ca, f.leaf), key: f.key, src: keySrc,
			want: []string{"the private key belongs to certificate 2 (line ", "of " + certSrc, "must start with the server's own certificate"}},
		{name: "expired", cert: f.chain, key: f.key, at: f.leaf.NotAfter.Add(time.Second), src: certSrc,
			want: []string{"expired on " + f.leaf.NotAfter.UTC().Format(time.RFC3339)}},
		{name: "not yet valid", cert: f.chain, key: f.key, at: f.leaf.NotBefore.Add(-time.Second), src: certSrc,
			want: []string{"is not valid before " + f.leaf.NotBefore.UTC().Format(time.RFC3339)}},
		{name: "name not covered", cert: f.chain, key: f.key, host: "other.example.com", src: certSrc,
			want: []string{`does not cover the name "other.example.com": it covers scoring.example.com, *.apps.example.com, 10.0.0.4`}},
		{name: "wildcard covers one label only", cert: f.chain, key: f.key, host: "a.b.apps.example.com", src: certSrc,
			want: []string{`does not cover the name "a.b.apps.example.com"`}},
		{name: "IP not covered", cert: f.chain, key: f.key, host: "10.0.0.5", src: certSrc,
			want: []string{`does not cover the name "10.0.0.5"`}},
		{name: "common name only", cert: withKey(certSpec{cn: "legacy.example.com"}), key: f.key, host: "legacy.example.com", src: certSrc,
			want: []string{"names no DNS names or IP addresses", `its common name "legacy.example.com" is not used by TLS clients`}},
		{name: "client certificate", cert: withKey(certSpec{cn: "c", dns: []string{"c.example.com"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}), key: f.key, src: certSrc,
			want: []string{"is not for TLS servers: its extended key usage allows clientAuth but not serverAuth"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			at := tc.at
			if at.IsZero() {
				at = now
			}
			kp, err := pki.ParseKeyPair(tc.cert, tc.key, certSrc, keySrc, tc.host, at)
			if kp != nil {
				t.Errorf("got a key pair with the error")
			}
			checkInvalid(t, err, tc.src, tc.want...)
		})
	}
}

func TestParseKeyPairAccepts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ecKey := newECKey(t, elliptic.P384())
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecLeaf := makeCert(t, certSpec{cn: "ec", dns: []string{"ec.example.com"}, key: ecKey, parent: f.ca, parentKey: f.caKey})
	edLeaf := makeCert(t, certSpec{cn: "ed", dns: []string{"ed.example.com"}, key: edKey, parent: f.ca, parentKey: f.caKey})
	pkcs8 := pemKey(t, rsaKey(), "pkcs8")
	mislabelled := bytes.Replace(pkcs8, []byte("PRIVATE KEY"), []byte("RSA PRIVATE KEY"), 2)
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}})
	bag := []byte("Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=CN = scoring.example.com\n\nissuer=CN = Test Issuing CA\n")

	tests := []struct {
		name      string
		cert, key []byte
		host      string
		leaf      *x509.Certificate
		keyType   string // the KeyPEM block type
	}{
		{name: "RSA PKCS#1", cert: f.chain, key: f.key, host: "scoring.example.com", leaf: f.leaf, keyType: "RSA PRIVATE KEY"},
		{name: "RSA PKCS#8", cert: f.chain, key: pkcs8, host: "scoring.example.com", leaf: f.leaf, keyType: "PRIVATE KEY"},
		{name: "PKCS#8 labelled PKCS#1", cert: f.chain, key: mislabelled, leaf: f.leaf, keyType: "PRIVATE KEY"},
		{name: "wildcard", cert: f.chain, key: f.key, host: "models.apps.example.com", leaf: f.leaf, keyType: "RSA PRIVATE KEY"},
		{name: "IP address", cert: f.chain, key: f.key, host: "10.0.0.4", leaf: f.leaf, keyType: "RSA PRIVATE KEY"},
		{name: "no name", cert: f.chain, key: f.key, leaf: f.leaf, keyType: "RSA PRIVATE KEY"},
		{name: "leaf alone", cert: pemCerts(f.leaf), key: f.key, leaf: f.leaf, keyType: "RSA PRIVATE KEY"},
		{name: "openssl pkcs12 output", cert: bytes.Join([][]byte{bag, pemCerts(f.leaf), bag, pemCerts(f.ca), f.key}, nil),
			key: append(append([]byte{}, bag...), f.key...), host: "scoring.example.com", leaf: f.leaf, keyType: "RSA PRIVATE KEY"},
		{name: "CRLF line ends", cert: bytes.ReplaceAll(f.chain, []byte("\n"), []byte("\r\n")), key: bytes.ReplaceAll(f.key, []byte("\n"), []byte("\r\n")),
			leaf: f.leaf, keyType: "RSA PRIVATE KEY"},
		{name: "ECDSA SEC1 with parameters", cert: pemCerts(ecLeaf, f.ca), key: append(ecParams, pemKey(t, ecKey, "sec1")...),
			host: "ec.example.com", leaf: ecLeaf, keyType: "EC PRIVATE KEY"},
		{name: "ECDSA PKCS#8", cert: pemCerts(ecLeaf), key: pemKey(t, ecKey, "pkcs8"), leaf: ecLeaf, keyType: "PRIVATE KEY"},
		{name: "Ed25519", cert: pemCerts(edLeaf, f.ca), key: pemKey(t, edKey, "pkcs8"), host: "ed.example.com", leaf: edLeaf, keyType: "PRIVATE KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kp, err := pki.ParseKeyPair(tc.cert, tc.key, certSrc, keySrc, tc.host, now)
			if err != nil {
				t.Fatal(err)
			}
			if !kp.Leaf.Equal(tc.leaf) || kp.Cert.Leaf != kp.Leaf {
				t.Errorf("Leaf is %q, Cert.Leaf %p; want %q set in both", kp.Leaf.Subject, kp.Cert.Leaf, tc.leaf.Subject)
			}
			sum := sha256.Sum256(tc.leaf.Raw)
			if got, want := kp.SHA256(), hex.EncodeToString(sum[:]); got != want {
				t.Errorf("SHA256() = %s, want %s", got, want)
			}
			// CertPEM is exactly the CERTIFICATE blocks, KeyPEM exactly the key.
			var want []byte
			for rest := tc.cert; ; {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil {
					break
				}
				if b.Type == "CERTIFICATE" {
					want = append(want, pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes})...)
				}
			}
			if !bytes.Equal(kp.CertPEM, want) {
				t.Errorf("CertPEM =\n%s\nwant\n%s", kp.CertPEM, want)
			}
			if len(kp.Cert.Certificate) != bytes.Count(want, []byte("BEGIN")) {
				t.Errorf("Cert has %d certificates, CertPEM %d", len(kp.Cert.Certificate), bytes.Count(want, []byte("BEGIN")))
			}
			kb, rest := pem.Decode(kp.KeyPEM)
			if kb == nil || kb.Type != tc.keyType || len(bytes.TrimSpace(rest)) != 0 || len(kb.Headers) != 0 {
				t.Errorf("KeyPEM =\n%s\nwant one %s block", kp.KeyPEM, tc.keyType)
			}
			// The normalised PEM is what crypto/tls loads.
			if _, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM); err != nil {
				t.Errorf("tls.X509KeyPair(CertPEM, KeyPEM): %v", err)
			}
		})
	}
}

func TestParseKeyPairDefaultSources(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := pki.ParseKeyPair(nil, f.key, "", "", "", now)
	checkInvalid(t, err, "certificate", "is empty")
	_, err = pki.ParseKeyPair(f.chain, nil, "", "", "", now)
	checkInvalid(t, err, "private key", "is empty")
}

// TestParseKeyPairLinear checks that work grows with the input's size, not
// faster: many stray BEGIN and END lines cost no more per byte than a few.
func TestParseKeyPairLinear(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, filler := range []string{"-----END X-----\n", "x-----BEGIN X-----", "-----BEGIN X-----\n-----END Y-----\n"} {
		small := bytes.Repeat([]byte(filler), 1000)
		large := bytes.Repeat([]byte(filler), (pki.MaxPEMSize-100)/len(filler))
		measure := func(in []byte) time.Duration {
			best := time.Duration(1 << 62)
			for range 3 {
				start := time.Now()
				pki.ParseKeyPair(append(append([]byte{}, f.chain...), in...), f.key, certSrc, keySrc, "", now)
				pki.ParseKeyPair(f.chain, in, certSrc, keySrc, "", now)
				best = min(best, time.Since(start))
			}
			return best
		}
		ts, tl := measure(small), measure(large)
		ratio := float64(len(large)) / float64(len(small))
		// Allow a wide margin for a shared machine; quadratic work would be
		// ~ratio times slower per byte.
		if float64(tl) > float64(ts)*ratio*8+float64(50*time.Millisecond) {
			t.Errorf("filler %q: %d bytes took %v, %d bytes %v: not linear", filler, len(small), ts, len(large), tl)
		}
	}
}

func TestHandshake(t *testing.T) {
	t.Parallel()
	ca, err := pki.NewCA("aksml test CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue([]string{"scoring.example.com"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	trusting := x509.NewCertPool()
	trusting.AddCert(ca.Cert())

	tests := []struct {
		name  string
		roots *x509.CertPool
		host  string
		check func(t *testing.T, err error)
	}{
		{name: "trusted", roots: trusting, host: "scoring.example.com", check: func(t *testing.T, err error) {
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
		}},
		{name: "unknown authority", roots: x509.NewCertPool(), host: "scoring.example.com", check: func(t *testing.T, err error) {
			var ua x509.UnknownAuthorityError
			if !errors.As(err, &ua) {
				t.Fatalf("handshake error %v, want an x509.UnknownAuthorityError", err)
			}
		}},
		{name: "other name", roots: trusting, host: "other.example.com", check: func(t *testing.T, err error) {
			var he x509.HostnameError
			if !errors.As(err, &he) {
				t.Fatalf("handshake error %v, want an x509.HostnameError", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc, sc := net.Pipe()
			server := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{kp.Cert}, Time: func() time.Time { return now }})
			done := make(chan error, 1)
			go func() {
				err := server.Handshake()
				if err == nil {
					// Answer one byte so the client sees a working connection.
					_, err = server.Write([]byte("!"))
				}
				server.Close()
				done <- err
			}()
			client := tls.Client(cc, &tls.Config{RootCAs: tc.roots, ServerName: tc.host, Time: func() time.Time { return now }})
			err := client.Handshake()
			if err == nil {
				// Read up to the server's close_notify: net.Pipe does not
				// buffer, so the server's Close waits for this read.
				got, rerr := io.ReadAll(client)
				if rerr != nil || string(got) != "!" {
					t.Errorf("reading from the server: %q, %v", got, rerr)
				}
			}
			client.Close()
			serverErr := <-done
			tc.check(t, err)
			if err == nil && serverErr != nil {
				t.Errorf("server: %v", serverErr)
			}
		})
	}
}
