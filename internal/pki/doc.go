// Package pki holds the certificates of the front end's TLS (enable_ssl).
//
// It has two jobs. ParseKeyPair validates the files a user gives to
// enable_ssl (ssl_cert_pem_file, ssl_key_pem_file and ssl_cname) before
// anything is deployed, so that a wrong file fails at the call with a
// message naming the file, the value and the rule, rather than as a front
// end that will not start or a client that will not connect. It reads the
// chain's CERTIFICATE blocks and the one private key (RSA, ECDSA or
// Ed25519; PKCS#1, SEC1 or PKCS#8; not encrypted), ignoring other text such
// as openssl's "Bag Attributes" lines, and checks that the key belongs to
// the first certificate, that the certificate is valid now, that it may
// serve TLS, and that it covers the name. The result, a KeyPair, is ready
// for a tls.Config and carries the normalised PEM a backend stores.
//
// CA is a workspace's own certificate authority (ECDSA P-256). It issues
// the serving certificates of leaf_domain_label and of local clusters;
// clients trust them by trusting the CA's certificate (CA.CertPEM). A CA is
// saved as its CertPEM and KeyPEM and loaded again with ParseCA.
//
// Every error about input is an errcode.InvalidArgument. Time is a
// parameter: callers pass now, so tests and examples control expiry.
package pki
