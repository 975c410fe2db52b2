package driver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Transport returns an HTTP transport that reaches the front end st
// describes: connections to ScoringBaseURL's host go to ScoringAddress
// when it is set (a simulator's or local cluster's CNAME is in no DNS),
// presenting the name for SNI and verification; and certificates are
// trusted if the system's roots or st's CABundle vouch for them.
// Connections to other hosts are made as usual.
func Transport(st ClusterStatus) (*http.Transport, error) {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = d.DialContext
	if st.ScoringAddress != "" && st.ScoringBaseURL != "" {
		u, err := url.Parse(st.ScoringBaseURL)
		if err != nil {
			return nil, fmt.Errorf("scoring base URL %q: %w", st.ScoringBaseURL, err)
		}
		host := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			host = net.JoinHostPort(u.Hostname(), port)
		}
		addr := st.ScoringAddress
		tr.Proxy = nil // the address is the front end's own
		tr.DialContext = func(ctx context.Context, network, hostport string) (net.Conn, error) {
			if hostport == host {
				hostport = addr
			}
			return d.DialContext(ctx, network, hostport)
		}
	}
	if st.TLS != nil && len(st.TLS.CABundle) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(st.TLS.CABundle) {
			return nil, fmt.Errorf("front end of %s: the CA bundle holds no PEM certificate", st.ScoringBaseURL)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr, nil
}
