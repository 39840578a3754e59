// Command certs writes the certificates and keys of the test control plane
// into the folder given as its argument: a cluster CA, the API server's
// serving certificate, an admin client certificate (system:masters), a
// front-proxy CA with its client certificate for the aggregator, and the
// service-account signing key pair.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type pair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: certs DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := issue(dir, "ca", pkix.Name{CommonName: "aideploy-test-ca"}, nil, nil)
	if err != nil {
		return err
	}
	proxyCA, err := issue(dir, "front-proxy-ca", pkix.Name{CommonName: "aideploy-test-front-proxy-ca"}, nil, nil)
	if err != nil {
		return err
	}
	server := &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 0, 0, 1)},
	}
	client := &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := issue(dir, "apiserver", pkix.Name{CommonName: "kube-apiserver"}, server, ca); err != nil {
		return err
	}
	if _, err := issue(dir, "admin", pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, client, ca); err != nil {
		return err
	}
	if _, err := issue(dir, "front-proxy-client", pkix.Name{CommonName: "front-proxy-client"}, client, proxyCA); err != nil {
		return err
	}
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, "sa.key"), sa); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pub)
}

// issue writes NAME.crt and NAME.key: a CA when parent is nil, else a leaf
// shaped by tmpl and signed by parent.
func issue(dir, name string, subject pkix.Name, tmpl *x509.Certificate, parent *pair) (*pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	cert := &x509.Certificate{}
	if tmpl != nil {
		*cert = *tmpl
	}
	cert.SerialNumber = serial
	cert.Subject = subject
	cert.NotBefore = time.Now().Add(-time.Hour)
	cert.NotAfter = time.Now().AddDate(10, 0, 0)
	cert.BasicConstraintsValid = true
	signer, signerKey := cert, key
	if parent == nil {
		cert.IsCA = true
		cert.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		cert.KeyUsage = x509.KeyUsageDigitalSignature
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, cert, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", name, err)
	}
	if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, name+".key"), key); err != nil {
		return nil, err
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pair{cert: parsed, key: key}, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
