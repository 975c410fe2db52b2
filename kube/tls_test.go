package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
)

type testPKI struct {
	ca *pki.CA
}

func newTestPKI(t testing.TB) testPKI {
	ca, err := pki.NewCA("kube test CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{ca}
}

func (p testPKI) tls(t testing.TB, cname string) *driver.TLS {
	kp, err := p.ca.Issue([]string{cname}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &driver.TLS{CName: cname, CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM, CABundle: p.ca.CertPEM()}
}

func secretOf(t *driver.TLS) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: FrontEndTLSSecret, Namespace: "azureml", Annotations: map[string]string{AnnotationTLSCName: t.CName}},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: t.CertPEM, corev1.TLSPrivateKeyKey: t.KeyPEM, TLSSecretCAKey: t.CABundle},
	}
}

func TestParseTLSSecret(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	good := p.tls(t, "fe.example.com")
	other := p.tls(t, "fe.example.com")
	got, err := ParseTLSSecret(secretOf(good))
	if err != nil {
		t.Fatal(err)
	}
	if got.CName != "fe.example.com" || got.Certificate.Leaf == nil || string(got.CABundle) != string(good.CABundle) || len(got.SHA256()) != 64 {
		t.Errorf("parsed %+v", got)
	}
	for _, tc := range []struct {
		name string
		mut  func(*corev1.Secret)
		want string
	}{
		{"no cname", func(s *corev1.Secret) { delete(s.Annotations, AnnotationTLSCName) }, `annotation aksml.io/cname "": is empty`},
		{"bad cname", func(s *corev1.Secret) { s.Annotations[AnnotationTLSCName] = "fe_1.example.com" }, `"fe_1.example.com": must be a DNS name`},
		{"empty label", func(s *corev1.Secret) { s.Annotations[AnnotationTLSCName] = "fe..example.com" }, "labels of 1 to 63"},
		{"key of another certificate", func(s *corev1.Secret) { s.Data[corev1.TLSPrivateKeyKey] = other.KeyPEM }, "tls.key: the private key (ECDSA P-256) does not match the certificate in secret azureml/azuremlfessl tls.crt"},
		{"no certificate", func(s *corev1.Secret) { delete(s.Data, corev1.TLSCertKey) }, "tls.crt: is empty"},
		{"CA bundle without PEM", func(s *corev1.Secret) { s.Data[TLSSecretCAKey] = []byte("not PEM") }, "ca.crt holds no PEM certificate"},
		{"huge", func(s *corev1.Secret) { s.Data[corev1.TLSCertKey] = make([]byte, 1<<20+1) }, "tls.crt is 1048577 bytes, over the limit"},
	} {
		s := secretOf(good)
		tc.mut(s)
		_, err := ParseTLSSecret(s)
		if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "secret azureml/azuremlfessl") {
			t.Errorf("%s: %v, want InvalidArgument naming the secret and %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseTLSSecret(nil); !errors.Is(err, errcode.InvalidArgument) {
		t.Errorf("nil: %v", err)
	}
}

// FuzzParseTLSSecret: any Secret is refused with InvalidArgument or gives
// a certificate with its leaf and a valid name; it never panics.
func FuzzParseTLSSecret(f *testing.F) {
	p := newTestPKI(f)
	good := p.tls(f, "fe.example.com")
	f.Add("fe.example.com", good.CertPEM, good.KeyPEM, good.CABundle)
	f.Add("", good.CertPEM, good.KeyPEM, []byte(nil))
	f.Add("1.2.3.4", []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), good.KeyPEM, []byte("x"))
	f.Add("a.b", good.KeyPEM, good.CertPEM, good.CertPEM)
	f.Fuzz(func(t *testing.T, cname string, crt, key, ca []byte) {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: FrontEndTLSSecret, Namespace: "azureml", Annotations: map[string]string{AnnotationTLSCName: cname}},
			Data:       map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key, TLSSecretCAKey: ca},
		}
		got, err := ParseTLSSecret(s)
		if err != nil {
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("%v is not InvalidArgument", err)
			}
			return
		}
		if got.Certificate.Leaf == nil || checkCName(got.CName) != nil || got.CName != cname {
			t.Fatalf("accepted %+v", got)
		}
	})
}

// serveCert serves TLS on loopback with the certificate cert returns
// (nil: handshakes fail), until the test ends.
func serveCert(t *testing.T, cert func() *tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c := cert(); c != nil {
			return c, nil
		}
		return nil, errors.New("no certificate")
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// SetTLS writes the Secret the front end watches; Status reports the
// certificate a handshake with the front end presents.
func TestSetTLSAndStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newTestPKI(t)
	first, second := p.tls(t, "scoring.example.com"), p.tls(t, "scoring.example.com")
	firstCert, _ := tls.X509KeyPair(first.CertPEM, first.KeyPEM)
	var presented atomic.Pointer[tls.Certificate] // what the fake front end serves
	set := presented.Store
	addr := serveCert(t, presented.Load)
	_, port, _ := net.SplitHostPort(addr)

	client := fake.NewClientset()
	c := &Cluster{name: "aks", client: client, opts: (&Options{ScoringBaseURL: "http://127.0.0.1:1", ScoringTLSAddress: addr}).withDefaults()}

	status := func() driver.ClusterStatus {
		t.Helper()
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.TLS != nil || st.ScoringBaseURL != "http://127.0.0.1:1" || st.HTTPBaseURL != "http://127.0.0.1:1" || st.ScoringAddress != "" {
		t.Fatalf("without TLS: %+v", st)
	}

	if err := c.SetTLS(ctx, first); err != nil {
		t.Fatal(err)
	}
	s, err := client.CoreV1().Secrets("azureml").Get(ctx, FrontEndTLSSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != corev1.SecretTypeTLS || string(s.Data["tls.crt"]) != string(first.CertPEM) || string(s.Data["tls.key"]) != string(first.KeyPEM) ||
		string(s.Data["ca.crt"]) != string(first.CABundle) || s.Annotations[AnnotationTLSCName] != "scoring.example.com" {
		t.Errorf("secret written: type %s annotations %v keys %d", s.Type, s.Annotations, len(s.Data))
	}
	// The front end has no certificate yet: plain HTTP is what it serves.
	if st := status(); st.TLS != nil || st.ScoringBaseURL != "http://127.0.0.1:1" {
		t.Errorf("before the front end serves the certificate: TLS %+v base %s, want none", st.TLS, st.ScoringBaseURL)
	}
	set(&firstCert)
	st := status()
	wantBase := "https://scoring.example.com:" + port
	if st.TLS == nil || st.TLS.SHA256 != pki.Fingerprint(firstCert.Leaf.Raw) || st.TLS.CName != "scoring.example.com" ||
		!st.TLS.NotAfter.Equal(firstCert.Leaf.NotAfter) || string(st.TLS.CABundle) != string(first.CABundle) ||
		st.ScoringBaseURL != wantBase || st.ScoringAddress != addr || st.HTTPBaseURL != "http://127.0.0.1:1" {
		t.Errorf("serving: %+v, want TLS with the first certificate, base %s, address %s", st, wantBase, addr)
	}

	// Rotated: until the front end presents the new certificate, the old
	// one is reported.
	if err := c.SetTLS(ctx, second); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.TLS == nil || st.TLS.SHA256 != pki.Fingerprint(firstCert.Leaf.Raw) {
		t.Errorf("rotated, the front end still on the first certificate: %+v, want it reported", st.TLS)
	}
	secondCert, _ := tls.X509KeyPair(second.CertPEM, second.KeyPEM)
	set(&secondCert)
	if st := status(); st.TLS == nil || st.TLS.SHA256 != pki.Fingerprint(secondCert.Leaf.Raw) {
		t.Errorf("rotated: %+v, want the second certificate", st.TLS)
	}

	// A front end that cannot be reached: the Secret is taken at its word.
	unreached := &Cluster{name: "aks", client: client, opts: (&Options{ScoringBaseURL: "http://127.0.0.1:1", ScoringTLSAddress: "127.0.0.1:1"}).withDefaults()}
	if st, _ := unreached.Status(ctx); st.TLS == nil || st.TLS.SHA256 != pki.Fingerprint(secondCert.Leaf.Raw) || st.ScoringBaseURL != "https://scoring.example.com:1" {
		t.Errorf("unreachable front end: %+v", st)
	}

	// Invalid settings name the problem and change nothing.
	bad := *second
	bad.KeyPEM = first.KeyPEM
	for _, tc := range []struct {
		tls  driver.TLS
		want string
	}{
		{bad, `the certificate and key for "scoring.example.com" do not make a key pair`},
		{driver.TLS{CName: "", CertPEM: second.CertPEM, KeyPEM: second.KeyPEM}, `ssl_cname "" is empty`},
		{driver.TLS{CName: "x.example.com", CertPEM: second.CertPEM, KeyPEM: second.KeyPEM, CABundle: []byte("junk")}, "CA bundle"},
	} {
		err := c.SetTLS(ctx, &tc.tls)
		if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `compute target "aks"`) {
			t.Errorf("SetTLS(%s): %v, want InvalidArgument with %q", tc.tls.CName, err, tc.want)
		}
	}
	if st := status(); st.TLS == nil || st.TLS.SHA256 != pki.Fingerprint(secondCert.Leaf.Raw) {
		t.Errorf("after refused settings: %+v, want the second certificate still", st.TLS)
	}

	// Off.
	if err := c.SetTLS(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Secrets("azureml").Get(ctx, FrontEndTLSSecret, metav1.GetOptions{}); err == nil {
		t.Error("SetTLS(nil) left the secret")
	}
	if st := status(); st.TLS != nil || st.ScoringBaseURL != "http://127.0.0.1:1" {
		t.Errorf("TLS off: %+v", st)
	}
	if err := c.SetTLS(ctx, nil); err != nil {
		t.Errorf("SetTLS(nil) twice: %v", err)
	}
}
