package frontend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// engines are the ways to serve a Router: as an http.Handler under net/http,
// Serve's event loops, and ServeTLS's lean HTTPS engine (with a certificate
// for 127.0.0.1 that the tests' clients trust). Every HTTP test runs on each.
var engines = []string{"nethttp", "eventloop", "tls"}

// serve starts rt on engine and returns its base URL.
func serve(t *testing.T, rt *Router, engine string) string {
	t.Helper()
	switch engine {
	case "nethttp":
		s := httptest.NewServer(rt)
		t.Cleanup(s.Close)
		return s.URL
	case "eventloop":
		return "http://" + listen(t, rt, rt.Serve)
	case "tls":
		rt.SetCertificate(engineCert())
		return "https://" + listen(t, rt, rt.ServeTLS)
	}
	t.Fatalf("unknown engine %q", engine)
	return ""
}

// listen runs serve (rt.Serve or rt.ServeTLS) on a loopback listener until
// the test ends, then shuts rt down; it returns the listener's address.
func listen(t *testing.T, rt *Router, serve func(net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rt.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
	})
	return ln.Addr().String()
}

// testReplica is an httptest server counting its requests.
type testReplica struct {
	*httptest.Server
	hits atomic.Int64
}

// startReplica starts a replica answering with h (or "name" as body when h is nil).
func startReplica(t *testing.T, name string, h http.HandlerFunc) *testReplica {
	t.Helper()
	tr := &testReplica{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `"`+name+`"`)
		}
	}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(tr.Close)
	return tr
}

func (tr *testReplica) replica(id string, ready bool) Replica {
	return Replica{ID: id, URL: tr.URL, Ready: ready}
}

// version makes a version with one ready replica per server.
func version(name string, pct float64, reps ...*testReplica) Version {
	v := Version{Name: name, TrafficPercent: pct, MaxConcurrentPerReplica: 64}
	for i, r := range reps {
		v.Replicas = append(v.Replicas, r.replica(name+"-"+string(rune('a'+i)), true))
	}
	return v
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, TLSClientConfig: engineClientTLS()},
	Timeout: 30 * time.Second}

// engineTLS is the certificate of the "tls" engine, for 127.0.0.1, and a
// client configuration trusting it.
var engineTLS = sync.OnceValues(func() (*tls.Certificate, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		&tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}
})

func engineCert() *tls.Certificate { c, _ := engineTLS(); return c }

func engineClientTLS() *tls.Config { _, c := engineTLS(); return c }

type result struct {
	code   int
	body   string
	header http.Header
	dur    time.Duration
}

// do sends one request and returns what came back; headers are "K: V" pairs.
func do(t testing.TB, method, url, body string, headers ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return result{resp.StatusCode, string(b), resp.Header, time.Since(start)}
}

func mustSet(t *testing.T, rt *Router, r Route) {
	t.Helper()
	if err := rt.SetRoute(r); err != nil {
		t.Fatal(err)
	}
}
