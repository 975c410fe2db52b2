package frontend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "aksml test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial atomic.Int64

// issue makes a serving certificate for name.
func (ca *testCA) issue(t testing.TB, name string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// serveTLS starts rt's HTTPS engine on loopback and returns its address.
func serveTLS(t *testing.T, rt *Router) string {
	t.Helper()
	return listen(t, rt, rt.ServeTLS)
}

// tlsClient is a client that dials addr for any host and trusts pool.
func tlsClient(addr string, pool *x509.CertPool, keepAlive bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 16,
	}}
}

// TestServeTLS: scoring over HTTPS reaches the replica with the caller's
// key checked; a client that does not trust the CA, or that offers only
// TLS 1.1, is refused by the handshake; no certificate fails handshakes
// rather than serving one.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	const name = "scoring.aksml.test"
	ca := newTestCA(t)
	rep := startReplica(t, "r", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, `{"got":%s}`, b)
	})
	rt := New(nil)
	addr := serveTLS(t, rt)
	mustSet(t, rt, Route{Name: "svc", Auth: Auth{Mode: AuthKey, PrimaryKey: "k1", SecondaryKey: "k2"},
		Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
	url := "https://" + name + "/api/v1/service/svc/score"

	// No certificate yet: the handshake fails.
	if _, err := tlsClient(addr, ca.pool, false).Post(url, "application/json", strings.NewReader(`1`)); err == nil {
		t.Fatal("HTTPS without a certificate set: request succeeded, want a failed handshake")
	}
	rt.SetCertificate(ca.issue(t, name))

	c := tlsClient(addr, ca.pool, true)
	post := func(c *http.Client, key string) (int, string, error) {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`[1,2]`))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			return 0, "", fmt.Errorf("answer not over TLS 1.2+: %+v", resp.TLS)
		}
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := post(c, "k1"); err != nil || code != 200 || body != `{"got":[1,2]}` {
		t.Fatalf("HTTPS with the primary key: %d %q %v, want 200 {\"got\":[1,2]}", code, body, err)
	}
	if code, _, err := post(c, "wrong"); err != nil || code != 401 {
		t.Fatalf("HTTPS with a wrong key: %d %v, want 401", code, err)
	}

	_, _, err := post(tlsClient(addr, x509.NewCertPool(), false), "k1")
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("client that does not trust the CA: %v, want x509.UnknownAuthorityError", err)
	}
	old := tlsClient(addr, ca.pool, false)
	old.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS10
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	if _, _, err := post(old, "k1"); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1 client: %v, want a protocol version alert", err)
	}
	if n := rep.hits.Load(); n != 1 {
		t.Fatalf("replica saw %d requests, want 1 (only the request with the right key)", n)
	}
}

// TestCertificateRotationUnderLoad: while callers score over kept-alive
// and new connections, the certificate is replaced again and again; no
// request fails, and handshakes made after each change present the new
// certificate.
func TestCertificateRotationUnderLoad(t *testing.T) {
	t.Parallel()
	const name = "rotate.aksml.test"
	ca := newTestCA(t)
	rep := startReplica(t, "r", nil)
	rt := New(nil)
	rt.SetCertificate(ca.issue(t, name))
	addr := serveTLS(t, rt)
	mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", MaxConcurrentPerReplica: 64, Replicas: []Replica{rep.replica("r", true)}}}})
	url := "https://" + name + "/api/v1/service/svc/score"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tlsClient(addr, ca.pool, i%2 == 0) // half keep connections, half make new ones
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Post(url, "application/json", strings.NewReader(`{}`))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					s := err.Error()
					firstErr.CompareAndSwap(nil, &s)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for range 20 {
		cert := ca.issue(t, name)
		rt.SetCertificate(cert)
		// A handshake made now presents the new certificate.
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: name})
		if err != nil {
			t.Fatalf("handshake after rotation: %v", err)
		}
		got := fingerprint(conn.ConnectionState().PeerCertificates[0].Raw)
		conn.Close()
		if want := fingerprint(cert.Certificate[0]); got != want {
			t.Fatalf("handshake after rotation presented %s, want the new certificate %s", got, want)
		}
		before := ok.Load()
		waitFor(t, "requests to go on after a rotation", func() bool { return ok.Load() >= before+10 || failed.Load() > 0 })
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during 20 rotations; first: %s", n, n+ok.Load(), *firstErr.Load())
	}
	t.Logf("20 rotations under load: %d requests, 0 failed", ok.Load())
}

// TestHTTPSRedirect: while the router redirects, a plain-HTTP scoring
// request on either engine gets 308 to the same path under the HTTPS base
// and never reaches a replica; /metrics stays on plain HTTP; turned off,
// plain HTTP is served again.
func TestHTTPSRedirect(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"nethttp", "eventloop"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rep := startReplica(t, "r", nil)
			rt := New(nil)
			base := serve(t, rt, engine)
			mustSet(t, rt, Route{Name: "svc", Versions: []Version{{Name: "v", Replicas: []Replica{rep.replica("r", true)}}}})
			rt.SetHTTPSRedirect("https://svc.aksml.test:8443")
			noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.Post(base+"/api/v1/service/svc/score?x=1", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "https://svc.aksml.test:8443/api/v1/service/svc/score?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
				t.Fatalf("plain HTTP to an HTTPS-only router: %d Location %q, want 308 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
			}
			if !strings.Contains(string(b), "HTTPS only") || resp.Header.Get(HeaderRequestID) == "" {
				t.Fatalf("redirect body %q, request id %q: want the reason and an id", b, resp.Header.Get(HeaderRequestID))
			}
			if n := rep.hits.Load(); n != 0 {
				t.Fatalf("replica reached %d times over plain HTTP while HTTPS only, want 0", n)
			}
			if r := do(t, "GET", base+PathMetrics, ""); r.code != 200 || !strings.Contains(r.body, "aksml_") {
				t.Fatalf("/metrics while HTTPS only: %d, want 200 with the exposition", r.code)
			}
			rt.SetHTTPSRedirect("")
			if r := do(t, "POST", base+"/api/v1/service/svc/score", "{}"); r.code != 200 {
				t.Fatalf("plain HTTP with the redirect off: %d %q, want 200", r.code, r.body)
			}
		})
	}
}

// TestServeTLSDefences: a caller that opens a connection and sends no
// handshake is cut at the header timeout; connections past MaxConns are
// closed as they arrive.
func TestServeTLSDefences(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	rt := New(&Options{HeaderReadTimeout: 300 * time.Millisecond})
	rt.SetCertificate(ca.issue(t, "d.aksml.test"))
	addr := serveTLS(t, rt)

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection that sends no handshake got bytes, want it closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a connection that sends no handshake stayed open 10 s, want it closed at the 300 ms header timeout")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("silent connection closed after %v, want about the header timeout", d)
	}

	rt2 := New(&Options{MaxConns: 2})
	rt2.SetCertificate(ca.issue(t, "d.aksml.test"))
	addr = serveTLS(t, rt2)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "d.aksml.test"})
		if err != nil {
			t.Fatalf("connection within MaxConns: %v", err)
		}
		held = append(held, c)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "d.aksml.test"})
	if err == nil {
		c.Close()
		t.Fatal("a third connection with MaxConns 2 completed its handshake, want it closed")
	}
}
