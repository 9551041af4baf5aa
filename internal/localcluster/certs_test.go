package localcluster

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAPIServerCerts(t *testing.T) {
	dir := t.TempDir()
	ca, err := writeAPIServerCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("the CA is not PEM: %q", ca)
	}
	b, err := os.ReadFile(filepath.Join(dir, "apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("apiserver.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// What in-cluster clients (the kubernetes Service) and the host's clients dial.
	for _, n := range []string{"localhost", "127.0.0.1", "10.0.0.1", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the serving certificate does not verify for %s: %v", n, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: pool}); err == nil {
		t.Error("the serving certificate verifies for example.com")
	}
	for _, f := range []string{"apiserver.key", "sa-signer.crt", "sa-signer.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// A restart keeps them.
	again, err := writeAPIServerCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(filepath.Join(dir, "apiserver.crt"))
	if !bytes.Equal(again, ca) || !bytes.Equal(b, b2) {
		t.Error("a second call replaced the certificates")
	}
}
