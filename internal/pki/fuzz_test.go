package pki_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
)

// checkFuzzErr fails t unless err is an InvalidArgument naming src.
func checkFuzzErr(t *testing.T, err error, srcs ...string) {
	t.Helper()
	if !errors.Is(err, errcode.InvalidArgument) {
		t.Fatalf("error %q is %v, want InvalidArgument", err, errcode.Of(err))
	}
	for _, s := range srcs {
		if strings.HasPrefix(err.Error(), s+": ") {
			return
		}
	}
	t.Fatalf("error %q does not start with one of %q", err, srcs)
}

func FuzzParseKeyPair(f *testing.F) {
	ca, err := pki.NewCA("fuzz CA", now, 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	kp, err := ca.Issue([]string{"scoring.example.com", "10.0.0.4"}, now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	fx := newFixture(f)
	f.Add(kp.CertPEM, kp.KeyPEM, "scoring.example.com")
	f.Add(fx.chain, fx.key, "x.apps.example.com")
	f.Add(kp.CertPEM[:len(kp.CertPEM)/2], kp.KeyPEM, "")
	f.Add(kp.CertPEM, kp.KeyPEM[:len(kp.KeyPEM)-10], "")
	f.Add(kp.KeyPEM, kp.CertPEM, "scoring.example.com")
	f.Add(append(kp.KeyPEM, kp.CertPEM...), append(kp.CertPEM, kp.KeyPEM...), "10.0.0.4")
	f.Add([]byte("Bag Attributes\n-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), "")
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte, name string) {
		got, err := pki.ParseKeyPair(certPEM, keyPEM, "cert", "key", name, now)
		if err != nil {
			if got != nil {
				t.Fatal("a key pair with an error")
			}
			checkFuzzErr(t, err, "cert", "key")
			return
		}
		if got.Leaf == nil || got.Cert.Leaf != got.Leaf || len(got.Cert.Certificate) == 0 || got.Cert.PrivateKey == nil {
			t.Fatalf("incomplete key pair %+v", got)
		}
		// The normalised PEM parses again to the same pair.
		again, err := pki.ParseKeyPair(got.CertPEM, got.KeyPEM, "cert", "key", name, now)
		if err != nil {
			t.Fatalf("normalised PEM does not parse again: %v", err)
		}
		if !bytes.Equal(again.CertPEM, got.CertPEM) || !bytes.Equal(again.KeyPEM, got.KeyPEM) || again.SHA256() != got.SHA256() {
			t.Fatal("normalised PEM changed when parsed again")
		}
	})
}

func FuzzParseCA(f *testing.F) {
	ca, err := pki.NewCA("fuzz CA", now, 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	kp, err := ca.Issue([]string{"scoring.example.com"}, now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca.CertPEM(), ca.KeyPEM())
	f.Add(ca.CertPEM()[:len(ca.CertPEM())/2], ca.KeyPEM())
	f.Add(ca.CertPEM(), ca.KeyPEM()[:len(ca.KeyPEM())/2])
	f.Add(ca.KeyPEM(), ca.CertPEM())
	f.Add(kp.CertPEM, kp.KeyPEM)
	f.Add(append(ca.KeyPEM(), ca.CertPEM()...), append(ca.CertPEM(), ca.KeyPEM()...))
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		got, err := pki.ParseCA(certPEM, keyPEM, "CA")
		if err != nil {
			if got != nil {
				t.Fatal("a CA with an error")
			}
			checkFuzzErr(t, err, "CA")
			return
		}
		again, err := pki.ParseCA(got.CertPEM(), got.KeyPEM(), "CA")
		if err != nil {
			t.Fatalf("the CA's own PEM does not parse again: %v", err)
		}
		if !again.Cert().Equal(got.Cert()) || !bytes.Equal(again.KeyPEM(), got.KeyPEM()) {
			t.Fatal("the CA changed when parsed again")
		}
		// A CA valid at some time issues certificates then.
		c := got.Cert()
		at := c.NotBefore.Add(time.Second)
		if !at.Before(c.NotAfter) {
			return
		}
		if _, err := got.Issue([]string{"a.example.com"}, at, time.Hour); err != nil {
			t.Fatalf("Issue at %v: %v", at, err)
		}
	})
}
