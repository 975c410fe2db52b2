package compute_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/drivertest"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/internal/pki"
	"github.com/aksml/aksml/simtest"
	"github.com/aksml/aksml/simulator"
)

// certFiles issues a certificate for names from ca (valid for validity)
// and writes it and its key as PEM files; it returns their paths.
func certFiles(t *testing.T, ca *pki.CA, validity time.Duration, names ...string) (certFile, keyFile string) {
	t.Helper()
	kp, err := ca.Issue(names, time.Now(), validity)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, kp.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Now(), 3650*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// served returns the SHA-256 of the certificate a new handshake to the
// target's front end presents, with the client the library makes.
func served(t *testing.T, ctx context.Context, target *compute.Target, pool *x509.CertPool) string {
	t.Helper()
	st, err := target.Cluster().Status(ctx)
	if err != nil || st.TLS == nil {
		t.Fatalf("status %+v, %v: want TLS on", st, err)
	}
	conn, err := tls.Dial("tcp", st.ScoringAddress, &tls.Config{ServerName: st.TLS.CName, RootCAs: pool})
	if err != nil {
		t.Fatalf("handshake with %s as %s: %v", st.ScoringAddress, st.TLS.CName, err)
	}
	defer conn.Close()
	kp := pki.KeyPair{Leaf: conn.ConnectionState().PeerCertificates[0]}
	return kp.SHA256()
}

// TestCustomCertificate: a target created with enable_ssl's own
// certificate serves its services on https://CNAME/...; Run reaches them
// (the library dials the front end for the name); a client that does not
// trust the certificate's CA is refused; plain HTTP is redirected.
func TestCustomCertificate(t *testing.T) {
	ca := newCA(t)
	const cname = "scoring.contoso.test"
	certFile, keyFile := certFiles(t, ca, 90*24*time.Hour, cname)
	env := simtest.New(t, &simtest.Options{Provisioning: compute.ProvisioningConfig{
		SSL: compute.SSLConfig{CName: cname, CertFile: certFile, KeyFile: keyFile},
	}})
	svc := env.DeployHandler("tls-svc", drivertest.Echo("custom"))
	if !strings.HasPrefix(svc.ScoringURI(), "https://"+cname+":") || !strings.HasSuffix(svc.ScoringURI(), "/api/v1/service/tls-svc/score") {
		t.Fatalf("scoring URI %q, want https://%s:PORT/api/v1/service/tls-svc/score", svc.ScoringURI(), cname)
	}
	// Run trusts the system's roots only: this CA is not among them.
	_, err := svc.Run(env.Ctx, `{"a":1}`)
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("Run with a certificate from a CA nobody trusts: %v, want x509.UnknownAuthorityError", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert())
	if got := served(t, env.Ctx, env.Target, pool); got == "" {
		t.Fatal("no certificate served")
	}
	st, _ := env.Target.Cluster().Status(env.Ctx)
	if st.TLS.CName != cname || len(st.TLS.CABundle) != 0 {
		t.Fatalf("TLS status %+v: want cname %s and no CA bundle (the certificate is the user's own)", st.TLS, cname)
	}
	if w, err := env.Target.Warnings(env.Ctx); err != nil || len(w) != 0 {
		t.Fatalf("warnings for a certificate valid 90 days more: %v %v, want none (the threshold is 30 days)", w, err)
	}
}

// TestCustomCertificateRefused: every rule of the certificate files is
// checked before anything is made, with an error naming the parameter,
// the file and the rule; no target is recorded.
func TestCustomCertificateRefused(t *testing.T) {
	ctx := context.Background()
	ca, err := pki.NewCA("test CA", time.Now().Add(-24*time.Hour), 3650*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good, goodKey := certFiles(t, ca, time.Hour, "a.contoso.test")
	_, otherKey := certFiles(t, ca, time.Hour, "a.contoso.test")
	expired := filepath.Join(t.TempDir(), "expired.pem")
	expiredKey := filepath.Join(t.TempDir(), "expired-key.pem")
	{
		kp, err := ca.Issue([]string{"a.contoso.test"}, time.Now().Add(-3*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(expired, kp.CertPEM, 0o644)
		os.WriteFile(expiredKey, kp.KeyPEM, 0o600)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o644)
	for _, tc := range []struct {
		name       string
		ssl        compute.SSLConfig
		want       []string
		wantFields string
	}{
		{"missing file", compute.SSLConfig{CName: "a.contoso.test", CertFile: "/nonexistent/cert.pem", KeyFile: goodKey}, []string{"ssl_cert_pem_file", "/nonexistent/cert.pem", "no such file"}, ""},
		{"not PEM", compute.SSLConfig{CName: "a.contoso.test", CertFile: garbage, KeyFile: goodKey}, []string{"ssl_cert_pem_file", garbage, "CERTIFICATE"}, ""},
		{"key of another certificate", compute.SSLConfig{CName: "a.contoso.test", CertFile: good, KeyFile: otherKey}, []string{"ssl_key_pem_file", otherKey, "match"}, ""},
		{"name not in certificate", compute.SSLConfig{CName: "b.contoso.test", CertFile: good, KeyFile: goodKey}, []string{"b.contoso.test", "a.contoso.test"}, ""},
		{"expired", compute.SSLConfig{CName: "a.contoso.test", CertFile: expired, KeyFile: expiredKey}, []string{"expired"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := aml.Open(ctx, t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			sim := simulator.New(nil)
			defer sim.Close()
			_, err = compute.Create(ctx, ws, "aks-tls", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest, SSL: tc.ssl}, &compute.CreateOptions{Provider: sim})
			if !errors.Is(err, errcode.InvalidArgument) {
				t.Fatalf("Create: %v, want InvalidArgument", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, lerr := compute.Lookup(ctx, ws, "aks-tls"); !errors.Is(lerr, errcode.NotFound) {
				t.Errorf("target recorded after a refused certificate: %v", lerr)
			}
		})
	}
}

// TestLeafDomainLabel: leaf_domain_label gets a certificate from the
// workspace CA for LABEL######.REGION.cloudapp.azure.com; Run trusts it
// without any setting; the CA is the same after the workspace is opened
// again, and it verifies the served certificate.
func TestLeafDomainLabel(t *testing.T) {
	env := simtest.New(t, &simtest.Options{Provisioning: compute.ProvisioningConfig{
		Location: "West Europe", SSL: compute.SSLConfig{LeafDomainLabel: "myservice"},
	}})
	svc := env.DeployHandler("leaf-svc", drivertest.Echo("leaf"))
	re := regexp.MustCompile(`^https://myservice[a-z0-9]{6}\.westeurope\.cloudapp\.azure\.com:\d+/api/v1/service/leaf-svc/score$`)
	if !re.MatchString(svc.ScoringURI()) {
		t.Fatalf("scoring URI %q, want %s", svc.ScoringURI(), re)
	}
	out, err := svc.Run(env.Ctx, `{"a":1}`)
	if err != nil || !strings.Contains(string(out), `"tag":"leaf"`) {
		t.Fatalf("Run over HTTPS with the workspace CA: %s %v", out, err)
	}
	bundle, err := compute.CABundle(env.Ctx, env.Workspace)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatalf("CABundle %q holds no certificate", bundle)
	}
	served(t, env.Ctx, env.Target, pool) // verifies against the bundle alone
	rec, _ := compute.Lookup(env.Ctx, env.Workspace, env.Target.Name())
	if !strings.HasPrefix(svc.ScoringURI(), "https://"+rec.ClusterFQDN+":") {
		t.Fatalf("recorded clusterFqdn %q is not the scoring URI's host (%s)", rec.ClusterFQDN, svc.ScoringURI())
	}

	// The CA outlives the process's handle on the workspace.
	dir := env.Workspace.Dir()
	ws2, err := aml.Open(env.Ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	again, err := compute.CABundle(env.Ctx, ws2)
	if err != nil || string(again) != string(bundle) {
		t.Fatalf("CABundle after reopening the workspace differs (%v)", err)
	}
	block, _ := pem.Decode(bundle)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("CABundle is not a PEM certificate: %q", bundle)
	}
}

// TestUpdateRotatesCertificate: Target.Update with a new certificate
// changes what new handshakes present, while callers keep scoring with
// Run: no call fails. Update with TLS off serves plain HTTP again and the
// scoring URI follows. Update with nothing to change is refused as the
// SDK refuses it.
func TestUpdateRotatesCertificate(t *testing.T) {
	ca := newCA(t)
	const cname = "rotate.contoso.test"
	certFile, keyFile := certFiles(t, ca, 24*time.Hour, cname)
	env := simtest.New(t, &simtest.Options{Provisioning: compute.ProvisioningConfig{
		SSL: compute.SSLConfig{CName: cname, CertFile: certFile, KeyFile: keyFile},
	}})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert())
	svc := env.DeployHandler("rot-svc", drivertest.Echo("rot"))
	key, _, err := svc.Keys(env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := served(t, env.Ctx, env.Target, pool)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := env.Target.Client(env.Ctx)
			if err != nil {
				firstErr.Store(err)
				failed.Add(1)
				return
			}
			// The library's client, trusting the test's CA as well.
			tr := c.Transport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: pool}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", svc.ScoringURI(), strings.NewReader(`{}`))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := hc.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	var last string
	for i := range 3 {
		cf, kf := certFiles(t, ca, 24*time.Hour, cname)
		if err := env.Target.Update(env.Ctx, compute.UpdateConfig{SSL: &compute.SSLConfig{CName: cname, CertFile: cf, KeyFile: kf}}); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		now := served(t, env.Ctx, env.Target, pool)
		if now == first || now == last {
			t.Fatalf("rotation %d: new handshakes still present the old certificate", i)
		}
		last = now
		before := ok.Load()
		for ok.Load() < before+5 && failed.Load() == 0 && env.Ctx.Err() == nil {
			time.Sleep(time.Millisecond) // until 5 more calls are answered
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d calls failed during 3 rotations; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}

	if err := env.Target.Update(env.Ctx, compute.UpdateConfig{SSL: &compute.SSLConfig{}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svc.ScoringURI(), "http://") {
		t.Fatalf("scoring URI with TLS off: %q, want http://", svc.ScoringURI())
	}
	if out, err := svc.Run(env.Ctx, `{}`); err != nil || !strings.Contains(string(out), "rot") {
		t.Fatalf("Run with TLS off: %s %v", out, err)
	}
	err = env.Target.Update(env.Ctx, compute.UpdateConfig{})
	if !errors.Is(err, errcode.InvalidArgument) || !strings.Contains(err.Error(), "No parameters provided to update.") {
		t.Fatalf("Update with nothing: %v, want the SDK's InvalidArgument", err)
	}
}

// TestExpiringCertificateWarned: a certificate that expires within 30
// days is a warning of the target; so is one that has expired.
func TestExpiringCertificateWarned(t *testing.T) {
	ca := newCA(t)
	const cname = "soon.contoso.test"
	certFile, keyFile := certFiles(t, ca, 10*24*time.Hour, cname)
	env := simtest.New(t, &simtest.Options{Provisioning: compute.ProvisioningConfig{
		SSL: compute.SSLConfig{CName: cname, CertFile: certFile, KeyFile: keyFile},
	}})
	w, err := env.Target.Warnings(env.Ctx)
	if err != nil || len(w) != 1 || w[0].Field != "ssl_configuration" || !strings.Contains(w[0].Message, "expires on") || !strings.Contains(w[0].Message, cname) {
		t.Fatalf("warnings %v %v: want one about %s expiring", w, err, cname)
	}
}
