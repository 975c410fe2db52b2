package drivertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/internal/pki"
)

// RunTLSTests runs the TLS cases (enable_ssl): scoring over HTTPS with key
// auth, a client that does not trust the CA refused by the handshake,
// plain HTTP redirected, and the certificate rotated under load with no
// failed request. RunConformanceTests runs them; a backend may run them
// alone.
func RunTLSTests(t *testing.T, h Harness) {
	t.Run("TLSScoringWithKeyAuth", func(t *testing.T) { testTLSScoring(t, h) })
	t.Run("TLSUntrustedClientRefused", func(t *testing.T) { testTLSUntrusted(t, h) })
	t.Run("TLSPlainHTTPRedirected", func(t *testing.T) { testTLSRedirect(t, h) })
	t.Run("TLSRotationUnderLoad", func(t *testing.T) { testTLSRotation(t, h) })
}

// testCA is the suite's certificate authority: the CABundle of the
// certificates it issues, as a workspace CA's.
type testCA struct{ ca *pki.CA }

func newTestCA(t *testing.T) testCA {
	t.Helper()
	ca, err := pki.NewCA("aksml conformance CA", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{ca}
}

// cert issues a certificate for name, to be served by SetTLS.
func (c testCA) cert(t *testing.T, name string) *driver.TLS {
	t.Helper()
	kp, err := c.ca.Issue([]string{name}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &driver.TLS{CName: name, CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM, CABundle: c.ca.CertPEM()}
}

// enableTLS serves t on c and waits until the front end reports it.
func enableTLS(ctx context.Context, t *testing.T, c driver.Cluster, cert *driver.TLS) driver.ClusterStatus {
	t.Helper()
	if err := c.SetTLS(ctx, cert); err != nil {
		t.Fatalf("SetTLS(%s): %v", cert.CName, err)
	}
	want := fingerprintPEM(t, cert.CertPEM)
	for {
		st, err := c.Status(ctx)
		if err == nil && st.TLS != nil && st.TLS.SHA256 == want {
			if !strings.HasPrefix(st.ScoringBaseURL, "https://"+cert.CName) {
				t.Fatalf("with TLS on, ScoringBaseURL is %q, want https://%s[:port]", st.ScoringBaseURL, cert.CName)
			}
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the front end never reported certificate %s (last status %+v, err %v)", want, st, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// fingerprintPEM is the hex SHA-256 of the first certificate in certPEM,
// as TLSStatus.SHA256 gives it.
func fingerprintPEM(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", certPEM)
	}
	return pki.Fingerprint(b.Bytes)
}

// tlsClient is the client the library would make for st.
func tlsClient(t *testing.T, st driver.ClusterStatus, keepAlive bool) *http.Client {
	t.Helper()
	tr, err := driver.Transport(st)
	if err != nil {
		t.Fatal(err)
	}
	tr.DisableKeepAlives = !keepAlive
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func testTLSScoring(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	ca := newTestCA(t)
	cst := enableTLS(ctx, t, c, ca.cert(t, "scoring.conformance.aksml.test"))
	spec := Spec("tlskeyed", Echo("tls"), 1)
	spec.Auth = driver.Auth{Mode: driver.AuthKey, PrimaryKey: "primary-key-aaaaaaaaaaaaaaaa", SecondaryKey: "secondary-key-bbbbbbbbbbbbbb"}
	st := deploy(ctx, t, c, spec)
	if want := cst.ScoringBaseURL + "/api/v1/service/tlskeyed/score"; st.ScoringURI != want {
		t.Fatalf("scoring URI with TLS on: %q, want %q", st.ScoringURI, want)
	}
	hc := tlsClient(t, cst, true)
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"no key", "", 401},
		{"wrong key", "nope", 401},
		{"primary", spec.Auth.PrimaryKey, 200},
		{"secondary", spec.Auth.SecondaryKey, 200},
	} {
		code, body, err := ScoreWith(ctx, hc, st.ScoringURI, tc.key, `{"x":1}`)
		if err != nil || code != tc.want {
			t.Errorf("HTTPS, %s: %d %q %v, want %d", tc.name, code, body, err, tc.want)
		}
		if tc.want == 200 && !strings.Contains(body, `"tag":"tls"`) {
			t.Errorf("HTTPS, %s: body %q, want the echo of the service", tc.name, body)
		}
	}
}

func testTLSUntrusted(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	ca := newTestCA(t)
	cst := enableTLS(ctx, t, c, ca.cert(t, "untrusted.conformance.aksml.test"))
	st := deploy(ctx, t, c, Spec("tlsuntrusted", Echo("u"), 1))
	// The address the library dials, without the CA bundle.
	bare := cst
	bare.TLS = nil
	hc := tlsClient(t, bare, false)
	hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: x509.NewCertPool()}
	_, _, err := ScoreWith(ctx, hc, st.ScoringURI, "", `{}`)
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("a client that does not trust the CA: %v, want the handshake refused (x509: certificate signed by unknown authority)", err)
	}
	// The same request from a client that trusts it is answered.
	if code, body, err := ScoreWith(ctx, tlsClient(t, cst, false), st.ScoringURI, "", `{}`); err != nil || code != 200 {
		t.Fatalf("a client that trusts the CA: %d %q %v, want 200", code, body, err)
	}
}

func testTLSRedirect(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	ca := newTestCA(t)
	cst := enableTLS(ctx, t, c, ca.cert(t, "redirect.conformance.aksml.test"))
	deploy(ctx, t, c, Spec("tlsredirect", Echo("r"), 1))
	if cst.HTTPBaseURL == "" || !strings.HasPrefix(cst.HTTPBaseURL, "http://") {
		t.Fatalf("HTTPBaseURL %q: want the front end's plain-HTTP address", cst.HTTPBaseURL)
	}
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cst.HTTPBaseURL+"/api/v1/service/tlsredirect/score", strings.NewReader(`{"secret":1}`))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := cst.ScoringBaseURL + "/api/v1/service/tlsredirect/score"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain HTTP to an HTTPS cluster: %d Location %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if strings.Contains(string(b), "echo") {
		t.Fatalf("plain HTTP to an HTTPS cluster reached the service: %q", b)
	}
}

func testTLSRotation(t *testing.T, h Harness) {
	ctx := testCtx(t)
	c := h.NewCluster(ctx, t, CPUShape)
	ca := newTestCA(t)
	const name = "rotation.conformance.aksml.test"
	cst := enableTLS(ctx, t, c, ca.cert(t, name))
	spec := Spec("tlsrotate", Echo("rot"), 2)
	spec.Versions[0].Replica.MaxConcurrentPerReplica = 4
	st := deploy(ctx, t, c, spec)
	kept := StartLoad(ctx, t, tlsClient(t, cst, true), st.ScoringURI, 3)
	fresh := StartLoad(ctx, t, tlsClient(t, cst, false), st.ScoringURI, 2)
	kept.Wait(ctx, t, 20)
	fresh.Wait(ctx, t, 10)
	const rotations = 5
	for range rotations {
		next := ca.cert(t, name)
		enableTLS(ctx, t, c, next)
		// A handshake made now presents the new certificate.
		pool := x509.NewCertPool()
		pool.AddCert(ca.ca.Cert())
		conn, err := tls.Dial("tcp", cst.ScoringAddress, &tls.Config{ServerName: name, RootCAs: pool})
		if err != nil {
			t.Fatalf("handshake after rotation: %v", err)
		}
		served := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if got, want := pki.Fingerprint(served.Raw), fingerprintPEM(t, next.CertPEM); got != want {
			t.Fatalf("a handshake after rotation presented %s, want the new certificate %s", got, want)
		}
		kept.Wait(ctx, t, 10)
		fresh.Wait(ctx, t, 5)
	}
	kept.Stop()
	fresh.Stop()
	if n := kept.Failed() + fresh.Failed(); n > 0 {
		t.Fatalf("%d of %d requests failed across %d rotations: %v %v", n, kept.Total()+fresh.Total(), rotations, kept.Failures(), fresh.Failures())
	}
	t.Logf("%d rotations under load: %d requests on kept-alive connections, %d on new ones, 0 failed", rotations, kept.Total(), fresh.Total())
}

// TLSOff turns c's TLS off and waits until its plain-HTTP address
// httpBase serves scoring again instead of redirecting: for harnesses
// whose cases share one front end, after a TLS case.
func TLSOff(t testing.TB, c driver.Cluster, httpBase string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.SetTLS(ctx, nil); err != nil {
		t.Errorf("TLS off: %v", err)
		return
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, httpBase+"/api/v1/service/none/score", nil)
		resp, err := noRedirect.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusPermanentRedirect {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Errorf("the front end at %s still redirects to HTTPS: %v", httpBase, err)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
