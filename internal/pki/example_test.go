package pki_test

import (
	"fmt"
	"time"

	"github.com/aksml/aksml/internal/pki"
)

func ExampleCA_Issue() {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ca, err := pki.NewCA("aksml workspace CA", now, 10*365*24*time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	kp, err := ca.Issue([]string{"scoring.example.com", "10.0.0.4"}, now, 90*24*time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("subject:", kp.Leaf.Subject)
	fmt.Println("issuer:", kp.Leaf.Issuer)
	fmt.Println("DNS names:", kp.Leaf.DNSNames)
	fmt.Println("IP addresses:", kp.Leaf.IPAddresses)
	fmt.Println("valid:", kp.Leaf.NotBefore.Format(time.RFC3339), "to", kp.Leaf.NotAfter.Format(time.RFC3339))
	fmt.Println("chain:", len(kp.Cert.Certificate), "certificates")
	// Output:
	// subject: CN=scoring.example.com
	// issuer: CN=aksml workspace CA
	// DNS names: [scoring.example.com]
	// IP addresses: [10.0.0.4]
	// valid: 2026-12-02T09:59:00Z to 2027-03-02T10:00:00Z
	// chain: 2 certificates
}

func ExampleParseKeyPair() {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	// Stand-ins for the files a user gives to enable_ssl.
	ca, err := pki.NewCA("Example CA", now, 365*24*time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	issued, err := ca.Issue([]string{"scoring.example.com"}, now, 30*24*time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	certFile, keyFile := issued.CertPEM, issued.KeyPEM
	certSrc, keySrc := `ssl_cert_pem_file "cert.pem"`, `ssl_key_pem_file "key.pem"`

	kp, err := pki.ParseKeyPair(certFile, keyFile, certSrc, keySrc, "scoring.example.com", now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("serving", kp.Leaf.DNSNames, "until", kp.Leaf.NotAfter.Format(time.RFC3339))

	_, err = pki.ParseKeyPair(certFile, keyFile, certSrc, keySrc, "www.example.com", now)
	fmt.Println(err)
	_, err = pki.ParseKeyPair(certFile, keyFile, certSrc, keySrc, "scoring.example.com", now.Add(31*24*time.Hour))
	fmt.Println(err)
	_, err = pki.ParseKeyPair(keyFile, certFile, certSrc, keySrc, "scoring.example.com", now)
	fmt.Println(err)
	// Output:
	// serving [scoring.example.com] until 2027-01-01T10:00:00Z
	// ssl_cert_pem_file "cert.pem": the certificate (subject "CN=scoring.example.com") does not cover the name "www.example.com": it covers scoring.example.com
	// ssl_cert_pem_file "cert.pem": the certificate (subject "CN=scoring.example.com") expired on 2027-01-01T10:00:00Z (now is 2027-01-02T10:00:00Z)
	// ssl_cert_pem_file "cert.pem": no PEM CERTIFICATE block found (found: PRIVATE KEY)
}
