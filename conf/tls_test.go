package conf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"testing"
	"time"
)

// testPKI writes a CA certificate and a client key pair signed by it, and a
// second key that matches nothing.
func testPKI(t *testing.T, dir string) (ca, cert, key, otherKey string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyPEM := func(k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cliKey := newKey()
	cliTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ferry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cliDER, err := x509.CreateCertificate(rand.Reader, cliTmpl, caTmpl, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca = writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	cert = writeFile(t, dir, "client.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER})))
	key = writeFile(t, dir, "client.key", keyPEM(cliKey))
	otherKey = writeFile(t, dir, "other.key", keyPEM(newKey()))
	return
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key, otherKey := testPKI(t, dir)
	junk := writeFile(t, dir, "junk.pem", "not a certificate\n")
	missing := filepath.Join(dir, "missing.pem")

	// Off: nil.
	if c, err := (Endpoint{Addr: "redis://h", Scheme: "redis"}).TLSConfig(); c != nil || err != nil {
		t.Fatalf("TLS off: %v, %v", c, err)
	}
	// rediss alone: system roots.
	c, err := (Endpoint{Scheme: "rediss"}).TLSConfig()
	if err != nil || c == nil || c.RootCAs != nil || c.MinVersion != tls.VersionTLS12 || len(c.Certificates) != 0 {
		t.Fatalf("rediss: %+v, %v", c, err)
	}
	// Full set.
	e := Endpoint{Scheme: "redis", TLS: TLS{Enabled: true, CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "redis.internal"}}
	c, err = e.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "redis.internal" || c.InsecureSkipVerify {
		t.Fatalf("config = %+v", c)
	}

	cases := []struct {
		name string
		tls  TLS
		want string
	}{
		{"ca missing", TLS{Enabled: true, CAFile: missing}, "config: tls.ca_file: cannot read CA file: open " + missing + ": no such file or directory"},
		{"ca junk", TLS{Enabled: true, CAFile: junk}, "config: tls.ca_file: " + junk + ": no PEM certificate in it"},
		{"ca is a key", TLS{Enabled: true, CAFile: key}, "config: tls.ca_file: " + key + ": no PEM certificate in it"},
		{"cert without key", TLS{Enabled: true, CertFile: cert}, "config: tls.key_file: required with tls.cert_file (the client certificate's private key)"},
		{"key without cert", TLS{Enabled: true, KeyFile: key}, "config: tls.cert_file: required with tls.key_file (the client certificate)"},
		{"cert missing", TLS{Enabled: true, CertFile: missing, KeyFile: key}, "config: tls.cert_file: cannot read certificate: open " + missing + ": no such file or directory"},
		{"key missing", TLS{Enabled: true, CertFile: cert, KeyFile: missing}, "config: tls.key_file: cannot read key: open " + missing + ": no such file or directory"},
		{"cert junk", TLS{Enabled: true, CertFile: junk, KeyFile: key}, "config: tls.cert_file: " + junk + " with key " + key + ": tls: failed to find any PEM data in certificate input"},
		{"key junk", TLS{Enabled: true, CertFile: cert, KeyFile: junk}, "config: tls.cert_file: " + cert + " with key " + junk + ": tls: failed to find any PEM data in key input"},
		{"key mismatch", TLS{Enabled: true, CertFile: cert, KeyFile: otherKey}, "config: tls.cert_file: " + cert + " with key " + otherKey + ": tls: private key does not match public key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := (Endpoint{Scheme: "redis", TLS: c.tls}).TLSConfig()
			wantErr(t, err, c.want)
		})
	}

	// Through a config file: the fields are named in full.
	_, err = load(t, "source = \"s\"\n[target]\naddr = \"rediss://t\"\n[target.tls]\nca_file = \""+junk+"\"\n")
	wantErr(t, err, "config: target.tls.ca_file: "+junk+": no PEM certificate in it")
	j := mustLoad(t, "target = \"t\"\n[source]\naddr = \"s\"\n[source.tls]\nenabled = true\nca_file = \""+ca+"\"\ncert_file = \""+cert+"\"\nkey_file = \""+key+"\"\n")
	if c, err := j.Source.TLSConfig(); err != nil || c == nil || len(c.Certificates) != 1 {
		t.Fatalf("source TLS: %v, %v", c, err)
	}
	if c, err := j.Target.TLSConfig(); err != nil || c != nil {
		t.Fatalf("target TLS should be off: %v, %v", c, err)
	}
}
