package job

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/verify"
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
	var state func() State
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { state = f }})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	// Until the stream carries some of the load: on a slow machine the
	// snapshot can take all of the first writes.
	time.Sleep(time.Second)
	redistest.WaitFor(t, 30*time.Second, func() bool { return state().Commands > 0 }, "stream commands applied")
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

// TestTLSSentinelSource: a source behind a sentinel that takes only TLS
// (sentinel:// with tls.enabled and a client certificate): the sync finds
// the master through it with the endpoint's TLS settings and the target
// ends equal to the source; verify, through the same lookup, finds no
// difference. Before, the sync dialled sentinels without TLS and failed.
func TestTLSSentinelSource(t *testing.T) {
	redistest.Require(t)
	certs := redistest.NewCerts(t)
	src := redistest.StartTLS(t, certs)
	sen := redistest.StartSentinelTLS(t, certs, "mymaster", src.Addr)
	dst := redistest.Start(t)
	c := testConf(t, "sentinel://"+sen.Addr+"/mymaster", dst.URL())
	c.Source.TLS.Enabled = true
	tlsEndpoint(&c.Source, certs, true)
	c.Source.DialTimeout, c.Target.DialTimeout = 5*time.Second, 5*time.Second
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	syncAndCompare(t, c, src, dst)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := verify.Run(ctx, verify.Options{Source: c.Source, Target: c.Target, Log: testLog(t)})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !res.Equal() || res.Compared == 0 {
		t.Errorf("verify: %d keys compared, %d differences (%v)", res.Compared, res.Total(), res.Diffs)
	}
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

// ACLs: the least a source user and a target user need (the README's
// lists). TestACLMinimal proves them sufficient (nothing in ACL LOG after a
// sync with every type, transactions, scripts, functions, FLUSHDB, PUBLISH
// and a target that already holds a key); TestACLEachPermission shows what
// missing each one does.
var (
	sourceACL = []string{"+psync", "+replconf", "+info", "+client|setname", "+command", "+module|list"}
	targetACL = []string{"+@write", "+multi", "+exec", "+select", "+ping", "+info", "+get", "+scan", "+publish",
		"+hgetall", "+watch", "+unwatch", "+time", "+client|id", "+client|kill", "+client|list", "+module|list",
		"+dump", "+config|get", "+client|setname", "+command"}
)

// aclUser creates user on s with perms. A source user needs no key or
// channel pattern (PSYNC streams everything); a target user gets every key
// and channel (~* &*).
func aclUser(t *testing.T, s *redistest.Server, user string, perms []string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">secret-" + user, "-@all"}
	if user != "ferry-src" {
		args = append(args, "~*", "&*")
	}
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
		out = append(out, fmt.Sprintf("%v:%v", f["reason"], f["object"]))
	}
	return out
}

func withUser(e *conf.Endpoint, user string) {
	e.Username, e.Password = user, "secret-"+user
}

func without(list []string, drop string) []string {
	var out []string
	for _, p := range list {
		if p != drop {
			out = append(out, p)
		}
	}
	return out
}

func TestACLMinimal(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	aclUser(t, src, "ferry-src", sourceACL)
	aclUser(t, dst, "ferry-dst", targetACL)
	c := testConf(t, src.URL(), dst.URL())
	withUser(&c.Source, "ferry-src")
	withUser(&c.Target, "ferry-dst")
	c.TargetNonempty = "overwrite" // counts the target's keys: SCAN
	dst.Do(t, "SET", "theirs", "1")
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0, 2}, TTLPct: 10, Seed: 9})
	redistest.LoadFunctionLibrary(t, sc)
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	streamOnly(t, sc)
	src.Do(t, "PUBLISH", "news", "hello")
	time.Sleep(time.Second)
	cancel()
	dst.Do(t, "DEL", "theirs")
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

// migrate (caught-up check, marker removal) needs nothing more.
func TestACLMinimalMigrate(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	aclUser(t, src, "ferry-src", sourceACL)
	aclUser(t, dst, "ferry-dst", targetACL)
	c := testConf(t, src.URL(), dst.URL())
	withUser(&c.Source, "ferry-src")
	withUser(&c.Target, "ferry-dst")
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 50, Seed: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := Run(ctx, Options{Conf: c, Migrate: true, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	if d := append(aclDenied(t, src), aclDenied(t, dst)...); len(d) > 0 {
		t.Errorf("ACL LOG: %v", d)
	}
}

// A source user that may not PSYNC: the job fails at once (job.Run's error:
// exit code 1), naming the missing permission.
func TestACLSourceWithoutPSYNC(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	aclUser(t, src, "ferry-src", without(sourceACL, "+psync"))
	c := testConf(t, src.URL(), dst.URL())
	withUser(&c.Source, "ferry-src")
	err := runFail(t, c)
	for _, want := range []string{"PSYNC", "NOPERM", "+psync", src.Addr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	t.Logf("without +psync: %v", err)
}

// TestACLEachPermission takes one permission away at a time. A required one
// makes the job fail with an error naming the command; an optional one only
// costs a feature (connection names; CONFIG GET: the keepalive interval and
// proto-max-bulk-len fall back to defaults; DUMP: the target's RDB version is
// read from INFO; COMMAND: the built-in command table, and no check that the
// target knows each command) and shows in ACL LOG. SCAN is needed when the target
// already holds keys (target_nonempty; and the sweep after a full resync),
// PUBLISH when the source publishes: their cases do that.
func TestACLEachPermission(t *testing.T) {
	redistest.Require(t)
	type perm struct {
		side, name string
		required   string // a word of the error; "" = optional
	}
	const (
		publish = "+publish" // its case publishes on the source
		scan    = "+scan"    // its case has a key on the target (target_nonempty = overwrite)
	)
	perms := []perm{
		{"source", "+psync", "psync"}, {"source", "+replconf", "replconf"}, {"source", "+info", "info"},
		{"source", "+client|setname", ""}, {"source", "+command", ""}, {"source", "+module|list", ""},
		{"target", "+@write", "set"}, {"target", "+multi", "multi"}, {"target", "+exec", "exec"},
		{"target", "+select", "select"}, {"target", "+ping", "ping"}, {"target", "+info", "info"},
		{"target", "+get", "get"}, {"target", scan, "scan"}, {"target", publish, "publish"}, {"target", "+dump", ""},
		{"target", "+config|get", ""}, {"target", "+client|setname", ""}, {"target", "+command", ""},
		// The lease (package lease): read and change it under WATCH; the
		// target's clock, the connections' IDs and killing an old owner's
		// connections are optional (a takeover then waits lease_ttl), and
		// so is checking that they are gone (CLIENT KILL's answer counts).
		{"target", "+hgetall", "hgetall"}, {"target", "+watch", "watch"}, {"target", "+unwatch", ""},
		{"target", "+time", ""}, {"target", "+client|id", ""}, {"target", "+client|kill", ""}, {"target", "+client|list", ""},
		{"target", "+module|list", ""}, // else a target without modules is not told from one with
	}
	for _, p := range perms {
		t.Run(p.side+"/"+p.name, func(t *testing.T) {
			src, dst := redistest.Start(t), redistest.Start(t)
			srcPerms, dstPerms := sourceACL, targetACL
			if p.side == "source" {
				srcPerms = without(srcPerms, p.name)
			} else {
				dstPerms = without(dstPerms, p.name)
			}
			aclUser(t, src, "ferry-src", srcPerms)
			aclUser(t, dst, "ferry-dst", dstPerms)
			c := testConf(t, src.URL(), dst.URL())
			withUser(&c.Source, "ferry-src")
			withUser(&c.Target, "ferry-dst")
			src.Do(t, "SET", "snap", "v")
			if p.name == scan {
				c.TargetNonempty = "overwrite"
				dst.Do(t, "SET", "theirs", "1")
			}
			ended := make(chan error, 1)
			stop := runSyncEnded(t, Options{Conf: c, Log: testLog(t)}, ended)
			dc := dst.Client(t)
			synced := func() bool { v, _ := dc.Get(context.Background(), "snap").Result(); return v == "v" }
			var runErr error
			deadline := time.Now().Add(20 * time.Second)
			for runErr == nil && !synced() && time.Now().Before(deadline) {
				select {
				case runErr = <-ended:
				case <-time.After(50 * time.Millisecond):
				}
			}
			if runErr == nil && synced() {
				if p.name == publish {
					src.Do(t, "PUBLISH", "news", "hello")
				}
				src.Do(t, "SET", "live", "v")
				for runErr == nil && dc.Exists(context.Background(), "live").Val() == 0 && time.Now().Before(deadline) {
					select {
					case runErr = <-ended:
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
			if _, err := stop(); runErr == nil {
				runErr = err
			}
			denied := aclDenied(t, src)
			if p.side == "target" {
				denied = aclDenied(t, dst)
			}
			t.Logf("without %s on the %s: error %v; ACL LOG %v", p.name, p.side, runErr, denied)
			if p.required != "" {
				if runErr == nil || !strings.Contains(strings.ToLower(runErr.Error()), p.required) || !strings.Contains(runErr.Error(), "NOPERM") {
					t.Fatalf("want the job to fail naming %s (NOPERM), got %v", p.required, runErr)
				}
				return
			}
			if runErr != nil {
				t.Fatalf("an optional permission failed the job: %v", runErr)
			}
			if dc.Exists(context.Background(), "live").Val() == 0 {
				t.Fatal("the stream was not applied")
			}
		})
	}
}
