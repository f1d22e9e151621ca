package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestNewCerts(t *testing.T) {
	c := NewCerts(t)
	for _, f := range []string{c.CAFile, c.ServerCert, c.ServerKey, c.ClientCert, c.ClientKey} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	srv, err := tls.LoadX509KeyPair(c.ServerCert, c.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(srv.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "redis.test"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: c.pool}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	other := NewCerts(t)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: other.pool}); err == nil {
		t.Error("two NewCerts share a CA")
	}
}

func TestStartTLS(t *testing.T) {
	Require(t)
	certs := NewCerts(t)
	s := StartTLS(t, certs)
	ctx := context.Background()

	// TLS only: no plain listener on the port.
	if _, err := rawInfoPID(s.Addr); err == nil {
		t.Fatal("the TLS port answered plain text")
	}
	if got := s.Do(t, "CONFIG", "GET", "port").([]any); len(got) != 2 || got[1] != "0" {
		t.Fatalf("CONFIG GET port: %v, want 0", got)
	}
	// The shared client (Do, Info) and TLSClient speak TLS.
	s.Do(t, "SET", "k", "v")
	c := TLSClient(t, s)
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET over TLS: %q %v", v, err)
	}
	if AnyClient(t, s).Ping(ctx).Err() != nil {
		t.Fatal("AnyClient")
	}
	if certsForAddr(s.Addr) != certs || certsForAddr("127.0.0.1:1") != nil {
		t.Fatal("certsForAddr")
	}
	if !strings.HasPrefix(TLSURL(s), "rediss://127.0.0.1:") {
		t.Fatalf("TLSURL %s", TLSURL(s))
	}
	// Client certificates are required by default.
	noCert := &tls.Config{RootCAs: certs.pool, MinVersion: tls.VersionTLS12}
	nc := redis.NewClient(tlsClientOptions(s.Addr, noCert))
	defer nc.Close()
	if err := nc.Ping(ctx).Err(); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
	// Another CA is not trusted.
	wrong := NewCerts(t).ClientTLS()
	wc := redis.NewClient(tlsClientOptions(s.Addr, wrong))
	defer wc.Close()
	if err := wc.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client with another CA: %v", err)
	}
	if len(s.ClientsNamed(t, HarnessClientName)) == 0 {
		t.Fatal("ClientsNamed over TLS")
	}

	// Restart keeps TLS (and the data, with a save).
	s.Do(t, "SAVE")
	RestartTLS(t, s)
	if v, err := TLSClient(t, s).Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after RestartTLS: %q %v", v, err)
	}
	if _, err := rawInfoPID(s.Addr); err == nil {
		t.Fatal("plain text after RestartTLS")
	}

	if _, err := startTLS(t, t.TempDir(), certs, []string{"--tls-port", "1"}); err == nil {
		t.Fatal("--tls-port must be managed")
	}
}

func TestStartTLSOptionalClientCert(t *testing.T) {
	Require(t)
	certs := NewCerts(t)
	s := StartTLS(t, certs, "--tls-auth-clients", "optional")
	cfg := &tls.Config{RootCAs: certs.pool, MinVersion: tls.VersionTLS12}
	c := redis.NewClient(tlsClientOptions(s.Addr, cfg))
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("optional client certificate: %v", err)
	}
	// server_name: a name of the certificate other than the host dialed.
	cfg = certs.ClientTLS()
	cfg.ServerName = "redis.test"
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	conn, err := d.DialContext(context.Background(), "tcp", s.Addr)
	if err != nil {
		t.Fatalf("server name redis.test: %v", err)
	}
	conn.Close()
}

func TestAssertSameDataTLS(t *testing.T) {
	Require(t)
	certs := NewCerts(t)
	a := StartTLS(t, certs)
	b := Start(t)
	opt := FillOptions{Keys: 50, DBs: []int{0, 2}, TTLPct: 20, Seed: 3}
	FillAllTypes(t, TLSClient(t, a), opt)
	FillAllTypes(t, b.Client(t), opt)
	LoadFunctionLibrary(t, TLSClient(t, a))
	LoadFunctionLibrary(t, b.Client(t))
	AssertSameDataTLS(t, a, b, CompareOptions{})
	AssertSameDataTLS(t, b, a, CompareOptions{})

	d, err := TakeDigestOf(context.Background(), a)
	if err != nil || d.Total() == 0 || len(d.Counts) != 2 {
		t.Fatalf("digest of a TLS server: %v, %+v", err, d)
	}
	a.Do(t, "SET", "extra", "1")
	out := runFake(t, func(tb testing.TB) { AssertSameDataTLS(tb, b, a, CompareOptions{}) })
	if !strings.Contains(out, `db0 key "extra": extra on target`) {
		t.Fatalf("difference not reported:\n%s", out)
	}
}
