package job

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"ferry/conf"
	"ferry/internal/redistest"
)

// tlsEndpoint sets e's TLS files from certs: the CA, and with mutual the
// client key pair.
func tlsEndpoint(e *conf.Endpoint, certs *redistest.Certs, mutual bool) {
	e.TLS.CAFile = certs.CAFile
	if mutual {
		e.TLS.CertFile, e.TLS.KeyFile = certs.ClientCert, certs.ClientKey
	}
}

// syncAndCompare runs a sync from src to dst with c, applies a write load
// and stream-only commands on the source, and checks that the target ends
// with the same data and exact counters.
func syncAndCompare(t *testing.T, c conf.Job, src, dst *redistest.Server) {
	t.Helper()
	// The path of a config file: defaults, then Validate (testConf's
	// endpoints come from ParseAddr, without the file's defaults).
	c.Source.DialTimeout, c.Target.DialTimeout = 5*time.Second, 5*time.Second
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	sc := redistest.AnyClient(t, src)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0, 2}, TTLPct: 10, Seed: 5})
	redistest.LoadFunctionLibrary(t, sc)
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	time.Sleep(time.Second)
	cancel()
	redistest.AssertSameDataTLS(t, src, dst, redistest.CompareOptions{Wait: 30 * time.Second})
	checkCounters(t, redistest.AnyClient(t, dst), l)
	sum, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Keys == 0 || sum.Commands == 0 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestTLSSourceMutual(t *testing.T) {
	redistest.Require(t)
	certs := redistest.NewCerts(t)
	src := redistest.StartTLS(t, certs) // client certificate required
	dst := redistest.Start(t)
	c := testConf(t, redistest.TLSURL(src), dst.URL())
	tlsEndpoint(&c.Source, certs, true)
	syncAndCompare(t, c, src, dst)
}

func TestTLSTargetServerName(t *testing.T) {
	redistest.Require(t)
	certs := redistest.NewCerts(t)
	src := redistest.Start(t)
	dst := redistest.StartTLS(t, certs, "--tls-auth-clients", "no")
	// Dial 127.0.0.1, verify the certificate's name redis.test; CA only.
	c := testConf(t, src.URL(), redistest.TLSURL(dst))
	tlsEndpoint(&c.Target, certs, false)
	c.Target.TLS.ServerName = "redis.test"
	syncAndCompare(t, c, src, dst)
}

func TestTLSBothSides(t *testing.T) {
	redistest.Require(t)
	srcCerts, dstCerts := redistest.NewCerts(t), redistest.NewCerts(t)
	src := redistest.StartTLS(t, srcCerts)
	dst := redistest.StartTLS(t, dstCerts)
	c := testConf(t, redistest.TLSURL(src), redistest.TLSURL(dst))
	tlsEndpoint(&c.Source, srcCerts, true)
	tlsEndpoint(&c.Target, dstCerts, true)
	syncAndCompare(t, c, src, dst)
}

// runFail runs a job that must fail before it syncs anything, and returns
// its error; a job still running after 20 s is a hang.
func runFail(t *testing.T, c conf.Job) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Run(ctx, Options{Conf: c, Log: testLog(t)})
	if ctx.Err() != nil {
		t.Fatalf("the job did not fail within 20 s (err %v)", err)
	}
	if err == nil {
		t.Fatal("the job succeeded")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error of several lines: %q", err)
	}
	return err
}

func TestTLSWrongCA(t *testing.T) {
	redistest.Require(t)
	certs, other := redistest.NewCerts(t), redistest.NewCerts(t)
	tlsSrv := redistest.StartTLS(t, certs, "--tls-auth-clients", "no")
	plain := redistest.Start(t)
	for _, side := range []string{"source", "target"} {
		t.Run(side, func(t *testing.T) {
			var c conf.Job
			if side == "source" {
				c = testConf(t, redistest.TLSURL(tlsSrv), plain.URL())
				tlsEndpoint(&c.Source, other, false)
			} else {
				c = testConf(t, plain.URL(), redistest.TLSURL(tlsSrv))
				tlsEndpoint(&c.Target, other, false)
			}
			err := runFail(t, c)
			if !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), tlsSrv.Addr) {
				t.Fatalf("want an error naming the certificate and %s, got: %v", tlsSrv.Addr, err)
			}
			t.Logf("%s with another CA: %v", side, err)
		})
	}
	t.Run("server name", func(t *testing.T) {
		c := testConf(t, redistest.TLSURL(tlsSrv), plain.URL())
		tlsEndpoint(&c.Source, certs, false)
		c.Source.TLS.ServerName = "other.test"
		err := runFail(t, c)
		if !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "other.test") {
			t.Fatalf("want an error naming the certificate and other.test, got: %v", err)
		}
		t.Logf("wrong server_name: %v", err)
	})
	t.Run("plain to a TLS port", func(t *testing.T) {
		c := testConf(t, "redis://"+tlsSrv.Addr, plain.URL())
		err := runFail(t, c)
		t.Logf("redis:// to a TLS port: %v", err)
	})
}

// insecure_skip_verify takes any certificate, but only when asked for.
func TestTLSInsecureSkipVerify(t *testing.T) {
	redistest.Require(t)
	certs := redistest.NewCerts(t)
	src := redistest.StartTLS(t, certs, "--tls-auth-clients", "no")
	dst := redistest.Start(t)

	// No CA file: the system's roots do not know the test CA.
	c := testConf(t, redistest.TLSURL(src), dst.URL())
	if err := runFail(t, c); !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without insecure_skip_verify: %v", err)
	}
	c = testConf(t, redistest.TLSURL(src), dst.URL())
	c.Source.TLS.InsecureSkipVerify = true
	syncAndCompare(t, c, src, dst)
}

// ACLs: the least a source user and a target user need. Both lists are the
// README's; the tests prove them sufficient (nothing in ACL LOG) and show
// what a missing permission looks like.
var (
	sourceACL = []string{"+psync", "+replconf", "+ping", "+info", "+client|setname"}
	targetACL = []string{"+@write", "+multi", "+exec", "+select", "+ping", "+info", "+get", "+dump", "+scan", "+type",
		"+config|get", "+client|setname"}
)

// aclUser creates user on s with perms (and every key, every channel).
func aclUser(t *testing.T, s *redistest.Server, user string, perms []string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">secret-" + user, "~*", "&*", "-@all"}
	for _, p := range perms {
		args = append(args, p)
	}
	s.Do(t, args...)
	s.Do(t, "ACL", "LOG", "RESET")
}

// aclDenied lists what ACL LOG recorded on s: "reason:object" entries.
func aclDenied(t *testing.T, s *redistest.Server) []string {
	t.Helper()
	v, err := s.Client(t).Do(context.Background(), "ACL", "LOG").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range v {
		f := map[string]any{}
		kv, _ := e.([]any)
		for i := 0; i+1 < len(kv); i += 2 {
			f[fmt.Sprint(kv[i])] = kv[i+1]
		}
		out = append(out, fmt.Sprintf("%v:%v(user %v)", f["reason"], f["object"], f["username"]))
	}
	return out
}

func withUser(e *conf.Endpoint, user string) {
	e.Username, e.Password = user, "secret-"+user
}

func TestACLMinimal(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	aclUser(t, src, "ferry-src", sourceACL)
	aclUser(t, dst, "ferry-dst", targetACL)
	c := testConf(t, src.URL(), dst.URL())
	withUser(&c.Source, "ferry-src")
	withUser(&c.Target, "ferry-dst")
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0, 2}, TTLPct: 10, Seed: 9})
	redistest.LoadFunctionLibrary(t, sc)
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	streamOnly(t, sc)
	time.Sleep(time.Second)
	cancel()
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	checkCounters(t, dst.Client(t), l)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := aclDenied(t, src); len(d) > 0 {
		t.Errorf("source ACL LOG: %v", d)
	}
	if d := aclDenied(t, dst); len(d) > 0 {
		t.Errorf("target ACL LOG: %v", d)
	}
}

// A source user that may not PSYNC: the job fails at once (job.Run's error:
// exit code 1), naming the missing permission.
func TestACLSourceWithoutPSYNC(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	var perms []string
	for _, p := range sourceACL {
		if p != "+psync" {
			perms = append(perms, p)
		}
	}
	aclUser(t, src, "ferry-src", perms)
	c := testConf(t, src.URL(), dst.URL())
	withUser(&c.Source, "ferry-src")
	err := runFail(t, c)
	for _, want := range []string{"PSYNC", "psync", src.Addr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	t.Logf("without +psync: %v", err)
}

// Each permission of the minimal lists is needed, or the job cannot tell
// what it misses: without it the job fails with a clear error, or goes on
// with a degraded feature (CLIENT SETNAME, CONFIG GET: names, defaults).
func TestACLEachPermission(t *testing.T) {
	redistest.Require(t)
	if testing.Short() {
		t.Skip("slow")
	}
	for _, side := range []string{"source", "target"} {
		list := sourceACL
		if side == "target" {
			list = targetACL
		}
		for _, drop := range list {
			t.Run(side+"/"+drop, func(t *testing.T) {
				src, dst := redistest.Start(t), redistest.Start(t)
				var perms []string
				for _, p := range list {
					if p != drop {
						perms = append(perms, p)
					}
				}
				srcPerms, dstPerms := sourceACL, targetACL
				if side == "source" {
					srcPerms = perms
				} else {
					dstPerms = perms
				}
				aclUser(t, src, "ferry-src", srcPerms)
				aclUser(t, dst, "ferry-dst", dstPerms)
				c := testConf(t, src.URL(), dst.URL())
				withUser(&c.Source, "ferry-src")
				withUser(&c.Target, "ferry-dst")
				src.Do(t, "SET", "k", "v")
				ended := make(chan error, 1)
				stop := runSyncEnded(t, Options{Conf: c, Log: testLog(t)}, ended)
				var runErr error
				synced := false
				deadline := time.After(15 * time.Second)
			wait:
				for {
					select {
					case runErr = <-ended:
						break wait
					case <-deadline:
						break wait
					case <-time.After(100 * time.Millisecond):
						if v, _ := dst.Client(t).Get(context.Background(), "k").Result(); v == "v" {
							synced = true
							break wait
						}
					}
				}
				stop()
				denied := aclDenied(t, src)
				if side == "target" {
					denied = aclDenied(t, dst)
				}
				t.Logf("without %s on the %s: synced %v, error %v, ACL LOG %v", drop, side, synced, runErr, denied)
			})
		}
	}
}

var _ = errors.New
var _ = redis.Nil
