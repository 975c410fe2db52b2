package fe_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aksml/aksml/internal/pki"
	"github.com/aksml/aksml/kube"
	"github.com/aksml/aksml/kube/fe"
)

// syncBuffer is a log sink safe for the front end's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// poll calls cond until it returns "" (met), failing with its last
// answer after ten seconds.
func poll(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tlsSecret(cname string, kp *pki.KeyPair, ca []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: kube.FrontEndTLSSecret, Namespace: kube.DefaultNamespace,
			Annotations: map[string]string{kube.AnnotationTLSCName: cname}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: kp.CertPEM, corev1.TLSPrivateKeyKey: kp.KeyPEM, kube.TLSSecretCAKey: ca},
	}
}

// The front end serves the certificate of the Secret azuremlfessl as the
// Secret comes, changes and goes: HTTPS with it and plain HTTP redirected
// to https://CNAME:HTTPSPORT; a new certificate for new handshakes while a
// kept-alive connection goes on with the old one; a Secret that does not
// parse logged and ignored; deleted, plain HTTP served again.
func TestServeTLSFollowsSecret(t *testing.T) {
	t.Parallel()
	const cname = "scoring.fe.aksml.test"
	now := time.Now()
	ca, err := pki.NewCA("fe test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func() *pki.KeyPair {
		kp, err := ca.Issue([]string{cname}, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert())

	client := fake.NewClientset()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready, readyTLS, done := make(chan string, 1), make(chan string, 1), make(chan error, 1)
	go func() {
		done <- fe.Serve(ctx, client, &fe.ServeOptions{
			Listen: "127.0.0.1:0", ListenTLS: "127.0.0.1:0", HTTPSPort: 8443,
			Logger: slog.New(slog.NewJSONHandler(logs, nil)), Ready: ready, ReadyTLS: readyTLS,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	var addr, tlsAddr string
	select {
	case addr = <-ready:
		tlsAddr = <-readyTLS
	case err := <-done:
		t.Fatalf("Serve stopped: %v", err)
	}

	// served is the fingerprint a new handshake gets, or the error.
	served := func() (string, error) {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: cname, RootCAs: pool})
		if err != nil {
			return "", err
		}
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0]
		return (&pki.KeyPair{Leaf: leaf}).SHA256(), nil
	}
	if _, err := served(); err == nil {
		t.Fatal("a handshake succeeded before any certificate was set")
	}
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer plain.CloseIdleConnections()
	plainAnswer := func() (int, string) {
		resp, err := plain.Post("http://"+addr+"/api/v1/service/iris/score?x=1", "application/json", strings.NewReader(`{}`))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Location")
	}

	// Added.
	first := issue()
	secrets := client.CoreV1().Secrets(kube.DefaultNamespace)
	if _, err := secrets.Create(ctx, tlsSecret(cname, first, ca.CertPEM()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "after the Secret is created", func() string {
		got, err := served()
		if err != nil || got != first.SHA256() {
			return "handshake presents " + got + " (" + errString(err) + "), want " + first.SHA256()
		}
		return ""
	})
	const wantLoc = "https://" + cname + ":8443/api/v1/service/iris/score?x=1"
	if code, loc := plainAnswer(); code != http.StatusPermanentRedirect || loc != wantLoc {
		t.Fatalf("plain HTTP with TLS on: %d %q, want 308 to %s", code, loc, wantLoc)
	}

	// A kept-alive HTTPS connection, made with the first certificate.
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, tlsAddr)
		},
	}
	defer tr.CloseIdleConnections()
	kept := &http.Client{Transport: tr}
	keptGet := func() (reused bool, leaf string) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, "https://"+cname+":8443/api/v1/service/iris/score", nil)
		resp, err := kept.Do(req)
		if err != nil {
			t.Fatalf("request on the kept-alive connection: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return reused, (&pki.KeyPair{Leaf: resp.TLS.PeerCertificates[0]}).SHA256()
	}
	if _, leaf := keptGet(); leaf != first.SHA256() {
		t.Fatalf("HTTPS request presented %s, want %s", leaf, first.SHA256())
	}

	// Updated: new handshakes present the new certificate; the open
	// connection goes on.
	second := issue()
	if _, err := secrets.Update(ctx, tlsSecret(cname, second, ca.CertPEM()), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "after the Secret is updated", func() string {
		got, err := served()
		if err != nil || got != second.SHA256() {
			return "handshake presents " + got + " (" + errString(err) + "), want " + second.SHA256()
		}
		return ""
	})
	if reused, leaf := keptGet(); !reused || leaf != first.SHA256() {
		t.Errorf("after rotation, the kept-alive connection: reused %v, certificate %s; want the same connection with %s", reused, leaf, first.SHA256())
	}

	// Malformed: logged, the certificate served before stays.
	bad := tlsSecret(cname, second, nil)
	bad.Data[corev1.TLSPrivateKeyKey] = []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
	if _, err := secrets.Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "after a malformed Secret", func() string {
		if !strings.Contains(logs.String(), "TLS secret refused") {
			return "no error logged; log: " + logs.String()
		}
		return ""
	})
	if got, err := served(); err != nil || got != second.SHA256() {
		t.Errorf("after a malformed Secret, handshakes present %s (%v), want the certificate served before, %s", got, err, second.SHA256())
	}
	if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "tls.key") {
		t.Errorf("the error logged does not name the field at fault (tls.key): %s", logs.String())
	}

	// Deleted: plain HTTP served again, handshakes fail.
	if err := secrets.Delete(ctx, kube.FrontEndTLSSecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "after the Secret is deleted", func() string {
		if code, loc := plainAnswer(); code == http.StatusPermanentRedirect {
			return "plain HTTP still redirected to " + loc
		}
		return ""
	})
	if code, _ := plainAnswer(); code != http.StatusNotFound {
		t.Errorf("plain HTTP with TLS off: %d, want 404 (no such service)", code)
	}
	if _, err := served(); err == nil {
		t.Error("a handshake succeeded after the Secret was deleted")
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
