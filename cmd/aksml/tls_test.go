package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aksml/aksml/internal/pki"
)

// shownTarget is what the TLS tests read of computetarget show.
type shownTarget struct {
	SSL struct {
		Status                  string `json:"status"`
		CName                   string `json:"cname"`
		LeafDomainLabel         string `json:"leafDomainLabel"`
		OverwriteExistingDomain bool   `json:"overwriteExistingDomain"`
	} `json:"sslConfiguration"`
	ClusterFQDN         string   `json:"clusterFqdn"`
	ScoringBaseURL      string   `json:"scoringBaseUrl"`
	CertificateNotAfter string   `json:"certificateNotAfter"`
	CertificateSHA256   string   `json:"certificateSha256"`
	Warnings            []string `json:"warnings"`
}

func (c *cli) showTarget(name string) shownTarget {
	c.t.Helper()
	var v shownTarget
	out := c.ok("computetarget", "show", "-n", name)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("computetarget show: %v\n%s", err, out)
	}
	return v
}

func (c *cli) scoringURI(svc string) string {
	c.t.Helper()
	var uri string
	if err := json.Unmarshal([]byte(c.ok("service", "show", "-n", svc, "--query", "scoringUri")), &uri); err != nil {
		c.t.Fatal(err)
	}
	return uri
}

// certPair issues a certificate for names from ca, valid for validity
// from now, and writes it and its key into dir; it returns the pair and
// the two paths.
func certPair(t *testing.T, ca *pki.CA, dir string, validity time.Duration, names ...string) (*pki.KeyPair, string, string) {
	t.Helper()
	kp, err := ca.Issue(names, time.Now(), validity)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, kp.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return kp, certFile, keyFile
}

func testCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Now().Add(-time.Hour), 3650*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestTLSOwnCertificate: create aks with your own certificate; show has
// its sslConfiguration and the served certificate; update rotates it
// (show's fingerprint follows); update --ssl-disable turns TLS off and
// the scoring URI is http again; update with nothing to change is the
// SDK's error.
func TestTLSOwnCertificate(t *testing.T) {
	c := newCLI(t)
	ca := testCA(t)
	dir := t.TempDir()
	kp1, cert1, key1 := certPair(t, ca, filepath.Join(dir, "1"), 365*24*time.Hour, "scoring.contoso.com")
	out := c.ok("computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest",
		"--ssl-cname", "scoring.contoso.com", "--ssl-cert-file", cert1, "--ssl-key-file", key1)
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "CERTIFICATE") {
		t.Errorf("create printed PEM:\n%s", out)
	}
	v := c.showTarget("myaks")
	if v.SSL.Status != "Enabled" || v.SSL.CName != "scoring.contoso.com" || v.SSL.LeafDomainLabel != "" {
		t.Errorf("sslConfiguration %+v, want Enabled for scoring.contoso.com", v.SSL)
	}
	if !strings.HasPrefix(v.ScoringBaseURL, "https://scoring.contoso.com:") {
		t.Errorf("scoringBaseUrl %q, want https://scoring.contoso.com:PORT", v.ScoringBaseURL)
	}
	if v.CertificateSHA256 != kp1.SHA256() || v.CertificateNotAfter != certTime(kp1.Leaf.NotAfter) {
		t.Errorf("served certificate %s until %s, want %s until %s", v.CertificateSHA256, v.CertificateNotAfter, kp1.SHA256(), certTime(kp1.Leaf.NotAfter))
	}
	if len(v.Warnings) != 0 {
		t.Errorf("warnings for a certificate valid a year: %q", v.Warnings)
	}

	c.ok("model", "register", "-n", "mymodel", "-p", "testdata/model/model.json")
	c.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig.json")
	if uri := c.scoringURI("myservice"); !strings.HasPrefix(uri, "https://scoring.contoso.com:") {
		t.Errorf("service show scoringUri %q, want https://scoring.contoso.com:PORT/...", uri)
	}

	// Rotation: a new certificate for the same name, served at once.
	kp2, cert2, key2 := certPair(t, ca, filepath.Join(dir, "2"), 20*24*time.Hour, "scoring.contoso.com")
	c.ok("computetarget", "update", "aks", "-n", "myaks", "--ssl-cname", "scoring.contoso.com", "--ssl-cert-file", cert2, "--ssl-key-file", key2)
	v = c.showTarget("myaks")
	if v.CertificateSHA256 != kp2.SHA256() || v.CertificateSHA256 == kp1.SHA256() {
		t.Errorf("after update the front end serves %s, want the new certificate %s", v.CertificateSHA256, kp2.SHA256())
	}
	// The new one expires within 30 days: show says so.
	if len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "scoring.contoso.com expires on") {
		t.Errorf("warnings %q, want one about the certificate's expiry", v.Warnings)
	}

	// Nothing to update: the SDK's message, InvalidArgument.
	_, errs, code := c.run("computetarget", "update", "aks", "-n", "myaks")
	if code != exitInvalidArgument || !strings.Contains(errs, "No parameters provided to update.") {
		t.Errorf("update without flags: exit %d, %q", code, errs)
	}

	c.ok("computetarget", "update", "aks", "-n", "myaks", "--ssl-disable")
	v = c.showTarget("myaks")
	if v.SSL.Status != "Disabled" || v.CertificateSHA256 != "" || !strings.HasPrefix(v.ScoringBaseURL, "http://") {
		t.Errorf("after --ssl-disable: %+v", v)
	}
	if uri := c.scoringURI("myservice"); !strings.HasPrefix(uri, "http://") {
		t.Errorf("service show scoringUri %q after --ssl-disable, want http://", uri)
	}
	var answer struct{ Result []float64 }
	if err := json.Unmarshal([]byte(c.ok("service", "run", "-n", "myservice", "-d", `{"data": [1]}`)), &answer); err != nil || !slices.Equal(answer.Result, []float64{2}) {
		t.Errorf("service run over plain HTTP: %+v, %v", answer, err)
	}
}

// TestTLSRefused: bad settings exit non-zero with a message naming the
// parameter and the file, and make no target.
func TestTLSRefused(t *testing.T) {
	c := newCLI(t)
	ca := testCA(t)
	dir := t.TempDir()
	_, cert, key := certPair(t, ca, filepath.Join(dir, "1"), 365*24*time.Hour, "scoring.contoso.com")
	_, _, otherKey := certPair(t, ca, filepath.Join(dir, "2"), 365*24*time.Hour, "scoring.contoso.com")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	create := []string{"computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest"}
	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"key-of-another-certificate", []string{"--ssl-cname", "scoring.contoso.com", "--ssl-cert-file", cert, "--ssl-key-file", otherKey}, []string{"ssl_key_pem_file", otherKey}},
		{"key-not-pem", []string{"--ssl-cname", "scoring.contoso.com", "--ssl-cert-file", cert, "--ssl-key-file", garbage}, []string{"ssl_key_pem_file", garbage}},
		{"key-missing", []string{"--ssl-cname", "scoring.contoso.com", "--ssl-cert-file", cert, "--ssl-key-file", filepath.Join(dir, "nope.pem")}, []string{"ssl_key_pem_file", "nope.pem"}},
		{"wrong-name", []string{"--ssl-cname", "www.fabrikam.com", "--ssl-cert-file", cert, "--ssl-key-file", key}, []string{"www.fabrikam.com", cert}},
		{"cname-alone", []string{"--ssl-cname", "scoring.contoso.com"}, []string{"ssl_cert_pem_file and ssl_key_pem_file missing"}},
		{"label-and-own", []string{"--ssl-leaf-domain-label", "myapp", "--ssl-cname", "scoring.contoso.com", "--ssl-cert-file", cert, "--ssl-key-file", key}, []string{"leaf_domain_label \"myapp\" cannot be combined"}},
		{"bad-label", []string{"--ssl-leaf-domain-label", "My_App"}, []string{"leaf_domain_label \"My_App\""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			out, errs, code := c.run(append(slices.Clone(create), tc.args...)...)
			if code != exitInvalidArgument {
				t.Errorf("exit %d, want %d; stderr %q", code, exitInvalidArgument, errs)
			}
			if out != "" {
				t.Errorf("stdout not empty: %s", out)
			}
			for _, w := range tc.wants {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not name %q", errs, w)
				}
			}
			if strings.Contains(errs, "PRIVATE KEY") {
				t.Errorf("stderr shows key material: %q", errs)
			}
		})
	}
	c.t = t
	if _, _, code := c.run("computetarget", "show", "-n", "myaks"); code != exitNotFound {
		t.Errorf("a refused create left a target: show exit %d", code)
	}

	// update: the same checks, and flags that contradict each other.
	c.ok("computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest")
	for _, args := range [][]string{
		{"--ssl-disable", "--ssl-leaf-domain-label", "myapp"},
		{"--ssl-cname", "scoring.contoso.com", "--ssl-cert-file", cert, "--ssl-key-file", otherKey},
	} {
		_, errs, code := c.run(append([]string{"computetarget", "update", "aks", "-n", "myaks"}, args...)...)
		if code != exitInvalidArgument {
			t.Errorf("update %v: exit %d, stderr %q", args, code, errs)
		}
	}
	if _, errs, code := c.run("computetarget", "update", "aks", "-n", "myaks", "--ssl-renew"); code != exitFailedPrecondition || !strings.Contains(errs, "Disabled") {
		t.Errorf("--ssl-renew without a leaf domain: exit %d, %q", code, errs)
	}
	if v := c.showTarget("myaks"); v.SSL.Status != "Disabled" {
		t.Errorf("refused updates changed the target: %+v", v.SSL)
	}
}

// TestTLSLeafDomainLabel: a target with a leaf domain label serves
// https://LABEL######.REGION.cloudapp.azure.com:PORT; service run reaches
// it; the workspace CA from workspace ca-bundle verifies the served
// certificate for a client that dials the front end itself (curl
// --resolve --cacert); --ssl-renew issues a new certificate for the same
// name.
func TestTLSLeafDomainLabel(t *testing.T) {
	c := newCLI(t)
	c.ok("computetarget", "create", "aks", "-n", "myaks", "--cluster-purpose", "DevTest", "-l", "East US", "--ssl-leaf-domain-label", "myapp")
	v := c.showTarget("myaks")
	if v.SSL.Status != "Auto" || v.SSL.LeafDomainLabel != "myapp" || v.SSL.CName != "" {
		t.Errorf("sslConfiguration %+v, want Auto for myapp", v.SSL)
	}
	if !regexp.MustCompile(`^myapp[a-z0-9]{6}\.eastus\.cloudapp\.azure\.com$`).MatchString(v.ClusterFQDN) {
		t.Errorf("clusterFqdn %q, want myapp######.eastus.cloudapp.azure.com", v.ClusterFQDN)
	}
	c.ok("model", "register", "-n", "mymodel", "-p", "testdata/model/model.json")
	c.ok("model", "deploy", "-ct", "myaks", "-m", "mymodel:1", "-n", "myservice", "-ic", "testdata/inferenceconfig.json", "-dc", "testdata/deploymentconfig.json")
	uri := c.scoringURI("myservice")
	if !strings.HasPrefix(uri, "https://"+v.ClusterFQDN+":") || !strings.HasSuffix(uri, "/api/v1/service/myservice/score") {
		t.Fatalf("service show scoringUri %q, want https://%s:PORT/api/v1/service/myservice/score", uri, v.ClusterFQDN)
	}
	var answer struct{ Result []float64 }
	if err := json.Unmarshal([]byte(c.ok("service", "run", "-n", "myservice", "-d", `{"data": [1, 2.5]}`)), &answer); err != nil || !slices.Equal(answer.Result, []float64{2, 5}) {
		t.Errorf("service run over HTTPS: %+v, %v", answer, err)
	}

	// The CA bundle, on stdout and in a file, is one PEM certificate.
	pemOut := c.ok("workspace", "ca-bundle")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	c.ok("workspace", "ca-bundle", "-f", caFile)
	b, err := os.ReadFile(caFile)
	if err != nil || string(b) != pemOut {
		t.Fatalf("ca-bundle -f wrote %q (%v), stdout was %q", b, err, pemOut)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("ca-bundle output is not a PEM certificate: %q", b)
	}

	// As curl --resolve NAME:PORT:127.0.0.1 --cacert ca.pem would.
	var keys struct{ PrimaryKey string }
	if err := json.Unmarshal([]byte(c.ok("service", "get-keys", "-n", "myservice")), &keys); err != nil {
		t.Fatal(err)
	}
	code, body, peer := curl(t, uri, pool, keys.PrimaryKey, `{"data": [3]}`)
	if code != http.StatusOK || !strings.Contains(body, "6") {
		t.Errorf("POST %s trusting ca-bundle: %d %s", uri, code, body)
	}
	if peer != v.CertificateSHA256 {
		t.Errorf("served certificate %s, show says %s", peer, v.CertificateSHA256)
	}
	if _, _, _, err := curlErr(uri, x509.NewCertPool(), keys.PrimaryKey, `{}`); err == nil {
		t.Errorf("a client that does not trust the workspace CA was served")
	}

	c.ok("computetarget", "update", "aks", "-n", "myaks", "--ssl-renew")
	renewed := c.showTarget("myaks")
	if renewed.ClusterFQDN != v.ClusterFQDN || renewed.CertificateSHA256 == v.CertificateSHA256 || renewed.SSL.Status != "Auto" {
		t.Errorf("after --ssl-renew: %+v, want a new certificate for %s", renewed, v.ClusterFQDN)
	}
	if code, _, peer := curl(t, uri, pool, keys.PrimaryKey, `{"data": [3]}`); code != http.StatusOK || peer != renewed.CertificateSHA256 {
		t.Errorf("after --ssl-renew: %d, served %s, want %s", code, peer, renewed.CertificateSHA256)
	}
}

// curl posts body to uri, dialing 127.0.0.1 at the URI's port and
// trusting only pool; it returns the status, the body and the SHA-256 of
// the certificate served.
func curl(t *testing.T, uri string, pool *x509.CertPool, key, body string) (int, string, string) {
	t.Helper()
	code, out, peer, err := curlErr(uri, pool, key, body)
	if err != nil {
		t.Fatalf("POST %s: %v", uri, err)
	}
	return code, out, peer
}

func curlErr(uri string, pool *x509.CertPool, key, body string) (int, string, string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return 0, "", "", err
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", u.Port()))
		},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	kp := pki.KeyPair{Leaf: resp.TLS.PeerCertificates[0]}
	return resp.StatusCode, string(b), kp.SHA256(), nil
}

// TestDocsSSLFlags: every --ssl-… flag docs/tls.md and docs/cli.md name
// is a flag of some command, and every ssl flag of the CLI is documented.
func TestDocsSSLFlags(t *testing.T) {
	a := &app{env: &env{getenv: func(string) string { return "" }}}
	flags := map[string]bool{}
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.HasPrefix(f.Name, "ssl-") && !f.Hidden {
				flags["--"+f.Name] = true
			}
		})
		for _, s := range c.Commands() {
			visit(s)
		}
	}
	visit(a.rootCmd())
	if len(flags) < 7 {
		t.Fatalf("found ssl flags %v, want the seven of az ml", flags)
	}
	named := map[string]bool{}
	re := regexp.MustCompile(`--ssl-[a-z-]*[a-z]`)
	for _, f := range []string{"../../docs/tls.md", "../../docs/cli.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllString(string(b), -1) {
			named[m] = true
			if !flags[m] {
				t.Errorf("%s names %s, which no command has", f, m)
			}
		}
	}
	for f := range flags {
		if !named[f] {
			t.Errorf("flag %s is not in docs/tls.md or docs/cli.md", f)
		}
	}
}
