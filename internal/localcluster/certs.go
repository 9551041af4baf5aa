package localcluster

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

// ServiceCIDR is the cluster's service range; ServiceIP, its first address, is the kubernetes
// Service's ClusterIP, where in-cluster clients reach the API server.
const (
	ServiceCIDR = "10.0.0.0/24"
	ServiceIP   = "10.0.0.1"
)

// ServingNames are the names and addresses the API server's serving certificate carries: those
// of envtest's (localhost, 127.0.0.1) plus the kubernetes Service's ClusterIP and DNS names, so
// that a pod's in-cluster client (a real kubelet's pods, test/node) can verify it.
var ServingNames = []string{"localhost", "127.0.0.1", ServiceIP,
	"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}

// servingCA is the file, in the API server's cert folder, of the CA that signed its serving
// certificate; envtest's own files (apiserver.crt, apiserver.key, sa-signer.crt, sa-signer.key)
// sit next to it.
const servingCA = "serving-ca.crt"

// writeAPIServerCerts writes into dir what envtest would generate itself (it does not when
// apiserver.crt exists): a serving certificate for ServingNames signed by a new CA, and the
// service-account signing key, and returns the CA (PEM). Files already there are kept, so a
// restarted API server keeps its certificates and the tokens it signed.
func writeAPIServerCerts(dir string) ([]byte, error) {
	if ca, err := os.ReadFile(filepath.Join(dir, servingCA)); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "apiserver.crt")); err == nil {
			return ca, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, caPEM, caCert, err := newCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "kmm-localcluster-ca", Organization: []string{"envtest-environment"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost", Organization: []string{"envtest-environment"}},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range ServingNames {
		if ip := net.ParseIP(n); ip != nil {
			serving.IPAddresses = append(serving.IPAddresses, ip)
		} else {
			serving.DNSNames = append(serving.DNSNames, n)
		}
	}
	key, certPEM, _, err := newCert(serving, caCert, caKey)
	if err != nil {
		return nil, err
	}
	saKey, saPEM, _, err := newCert(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "kmm-localcluster-sa-signer"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"apiserver.crt", certPEM}, {"apiserver.key", keyPEM(key)},
		{"sa-signer.crt", saPEM}, {"sa-signer.key", keyPEM(saKey)},
		{servingCA, caPEM}, // last: its presence says the others are complete
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return caPEM, nil
}

// newCert creates a P-256 key and a certificate of tmpl for it, signed by parent (self-signed
// when parent is nil).
func newCert(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the certificate of %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

func keyPEM(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
