package redistest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Certs is a throwaway PKI for TLS tests, written as PEM files in a temp
// dir: a CA, a server certificate for 127.0.0.1, ::1, localhost and
// redis.test, and a client certificate, both signed by the CA. Two calls
// make two unrelated CAs.
type Certs struct {
	Dir string
	// CAFile is the CA certificate; ServerCert/ServerKey and
	// ClientCert/ClientKey are the key pairs it signed.
	CAFile                string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	ServerNames           []string // the DNS names of the server certificate
	pool                  *x509.CertPool
	client                tls.Certificate
	caTmpl                *x509.Certificate
	caKey                 *ecdsa.PrivateKey
	serialMu              sync.Mutex
	serial                int64
}

// NewCerts makes a CA and the server and client key pairs (ECDSA P-256,
// valid from an hour ago for a day) in a new dir under t.TempDir().
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	c, err := newCerts(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: certificates: %v", err)
	}
	return c
}

func newCerts(dir string) (*Certs, error) {
	c := &Certs{Dir: dir, ServerNames: []string{"localhost", "redis.test"}}
	var err error
	if c.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	c.caTmpl = &x509.Certificate{
		SerialNumber:          c.nextSerial(),
		Subject:               pkix.Name{CommonName: "redistest CA " + filepath.Base(dir)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, c.caTmpl, c.caTmpl, &c.caKey.PublicKey, c.caKey)
	if err != nil {
		return nil, err
	}
	if c.caTmpl, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	c.pool = x509.NewCertPool()
	c.pool.AddCert(c.caTmpl)
	if c.CAFile, err = writePEM(dir, "ca.crt", "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	c.ServerCert, c.ServerKey, _, err = c.issue("server", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "redistest server"},
		DNSNames:    c.ServerNames,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	c.ClientCert, c.ClientKey, c.client, err = c.issue("client", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "redistest client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Certs) nextSerial() *big.Int {
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	c.serial++
	return big.NewInt(c.serial)
}

// issue signs tmpl with the CA and writes name.crt and name.key.
func (c *Certs) issue(name string, tmpl *x509.Certificate) (certFile, keyFile string, pair tls.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", pair, err
	}
	tmpl.SerialNumber = c.nextSerial()
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caTmpl, &key.PublicKey, c.caKey)
	if err != nil {
		return "", "", pair, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", pair, err
	}
	if certFile, err = writePEM(c.Dir, name+".crt", "CERTIFICATE", der); err != nil {
		return "", "", pair, err
	}
	if keyFile, err = writePEM(c.Dir, name+".key", "PRIVATE KEY", keyDER); err != nil {
		return "", "", pair, err
	}
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	return certFile, keyFile, pair, err
}

func writePEM(dir, name, typ string, der []byte) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// ClientTLS is a client configuration that trusts the CA and presents the
// client certificate (servers started by StartTLS require one unless given
// --tls-auth-clients no|optional). The server name is left to the dialer
// (the host dialed: 127.0.0.1 is in the certificate).
func (c *Certs) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      c.pool,
		Certificates: []tls.Certificate{c.client},
	}
}

// tlsServers remembers the Certs of every server StartTLS started, so the
// helpers that take a *Server know how to reach it.
var tlsServers sync.Map // *Server → *Certs

// CertsOf returns the Certs a server was started with, nil for a plain one.
func CertsOf(s *Server) *Certs {
	if c, ok := tlsServers.Load(s); ok {
		return c.(*Certs)
	}
	return nil
}

// certsForAddr is CertsOf by address (host:port), for code that has only the
// address (newClientOptions, the digest); nil for a plain server.
func certsForAddr(addr string) *Certs {
	var found *Certs
	tlsServers.Range(func(k, v any) bool {
		if k.(*Server).Addr == addr {
			found = v.(*Certs)
			return false
		}
		return true
	})
	return found
}

// tlsManaged are directives StartTLS owns, on top of the harness's.
var tlsManaged = map[string]bool{"tls-port": true}

func tlsDefaultArgs(c *Certs) []string {
	return []string{
		"--tls-cert-file", c.ServerCert,
		"--tls-key-file", c.ServerKey,
		"--tls-ca-cert-file", c.CAFile,
	}
}

// StartTLS starts a redis-server that speaks TLS only (--port 0, --tls-port
// on a free loopback port) with the server certificate of certs, trusting its
// CA for client certificates. Redis requires a client certificate by
// default; pass "--tls-auth-clients", "optional" (or "no") to allow clients
// without one. args override the defaults as for Start; --tls-port is
// managed too.
//
// The server's Addr and Port are the TLS ones; use TLSURL for a rediss://
// address. Do, Info, ClientsNamed and KillClients work (their shared
// connection is TLS); Client does not — use TLSClient. Restart does not
// either — use RestartTLS. AssertSameDataTLS compares TLS servers.
func StartTLS(t testing.TB, certs *Certs, args ...string) *Server {
	t.Helper()
	Require(t)
	s, err := startTLS(t, t.TempDir(), certs, args)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

func startTLS(t testing.TB, parent string, certs *Certs, args []string) (*Server, error) {
	if err := checkManaged(args); err != nil {
		return nil, err
	}
	ds, err := splitDirectives(args)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		if tlsManaged[directiveName(d)] {
			return nil, fmt.Errorf("%s is managed by StartTLS and cannot be passed", d[0])
		}
	}
	base, err := mergeArgs(defaultArgs(), tlsDefaultArgs(certs))
	if err != nil {
		return nil, err
	}
	userArgs, err := mergeArgs(base, args)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePortPair()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(parent, fmt.Sprintf("redis-tls-%d", port))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		s := &Server{Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, tb: t, bin: serverBinary()}
		tlsServers.Store(s, certs)
		err = s.launch(userArgs, certs)
		if err == nil {
			t.Cleanup(s.cleanup)
			t.Cleanup(func() { tlsServers.Delete(s) })
			return s, nil
		}
		tlsServers.Delete(s)
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
		os.RemoveAll(dir)
	}
	return nil, fmt.Errorf("could not start a TLS redis-server on a free port after 5 attempts: %w", lastErr)
}

// RestartTLS is Restart for a server started by StartTLS.
func RestartTLS(t testing.TB, s *Server, extraArgs ...string) {
	t.Helper()
	certs := CertsOf(s)
	if certs == nil {
		t.Fatalf("redistest: RestartTLS: %s was not started by StartTLS", s.Addr)
	}
	if err := s.restart(certs, extraArgs); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}

// tlsInfoPID is rawInfoPID over TLS.
func tlsInfoPID(addr string, cfg *tls.Config) (int, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	return infoPID(c)
}

// tlsClientOptions are the client options for addr, over TLS when cfg is set.
func tlsClientOptions(addr string, cfg *tls.Config) *redis.Options {
	o := newClientOptions(addr)
	o.TLSConfig = cfg
	return o
}

// TLSURL is the rediss:// address of a server started by StartTLS.
func TLSURL(s *Server) string { return "rediss://" + s.Addr }

// TLSClient is Client for a server started by StartTLS: a go-redis client
// over TLS with the client certificate, closed when the test ends.
func TLSClient(t testing.TB, s *Server) *redis.Client {
	t.Helper()
	certs := CertsOf(s)
	if certs == nil {
		t.Fatalf("redistest: TLSClient: %s was not started by StartTLS", s.Addr)
	}
	c := redis.NewClient(tlsClientOptions(s.Addr, certs.ClientTLS()))
	t.Cleanup(func() { c.Close() })
	return c
}

// AnyClient is TLSClient for a server started by StartTLS and Client for
// any other.
func AnyClient(t testing.TB, s *Server) *redis.Client {
	t.Helper()
	if CertsOf(s) != nil {
		return TLSClient(t, s)
	}
	return s.Client(t)
}

// TakeDigestOf is TakeDigest of one standalone server, plain or TLS.
func TakeDigestOf(ctx context.Context, s *Server) (*Digest, error) {
	var cfg *tls.Config
	if certs := CertsOf(s); certs != nil {
		cfg = certs.ClientTLS()
	}
	keys, funcs, err := digestNode(ctx, s.Addr, false, cfg)
	if err != nil {
		return nil, fmt.Errorf("digest %s: %w", s.Addr, err)
	}
	d := &Digest{Keys: map[string]KeyDigest{}, Functions: funcs, TakenAt: time.Now()}
	if d.Functions == nil {
		d.Functions = map[string]string{}
	}
	for _, k := range keys {
		d.Keys[digestKey(k.DB, k.Key)] = k
	}
	d.finish()
	return d, nil
}

// AssertSameDataTLS is AssertSameDataOpts for two standalone servers either
// of which may have been started by StartTLS (opt's cluster flags must be
// false).
func AssertSameDataTLS(t testing.TB, src, dst *Server, opt CompareOptions) {
	t.Helper()
	if opt.SrcCluster || opt.DstCluster {
		t.Fatalf("redistest: AssertSameDataTLS compares standalone servers only")
	}
	tol := opt.TTLTolerance
	if tol == 0 {
		tol = 2 * time.Second
	}
	deadline := time.Now().Add(opt.Wait)
	for {
		ctx := context.Background()
		sd, err := TakeDigestOf(ctx, src)
		var dd *Digest
		if err == nil {
			dd, err = TakeDigestOf(ctx, dst)
		}
		var diffs []string
		if err == nil {
			if opt.DBMap != nil {
				sd, err = sd.MapDBs(opt.DBMap)
			}
			if err == nil {
				if opt.IgnoreFunctions {
					sd.Functions, dd.Functions = nil, nil
				}
				diffs = sd.Diff(dd, tol)
				if len(diffs) == 0 {
					return
				}
			}
		}
		if time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("redistest: compare %s → %s: %v", src.Addr, dst.Addr, err)
		}
		shown := diffs
		if len(shown) > 20 {
			shown = shown[:20]
		}
		t.Fatalf("redistest: target %s differs from source %s: %d differences; first %d:\n  %s\nsource: %d keys: %s\ntarget: %d keys: %s",
			dst.Addr, src.Addr, len(diffs), len(shown), strings.Join(shown, "\n  "),
			sd.Total(), sd.CountsString(), dd.Total(), dd.CountsString())
	}
}
