package ctl

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/internal/redistest"
)

func TestKeyspace(t *testing.T) {
	info := "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0,subexpiry=2\r\ndb12:keys=40,expires=0,avg_ttl=0\r\n"
	if k := Keyspace(info, "keys"); k[0] != 3 || k[12] != 40 || len(k) != 2 || Sum(k) != 43 {
		t.Errorf("keys: %v", k)
	}
	if k := Keyspace(info, "subexpiry"); k[0] != 2 || len(k) != 1 {
		t.Errorf("subexpiry: %v", k)
	}
	if v := InfoField("# Server\r\nredis_version:7.0.15\r\n", "redis_version"); v != "7.0.15" {
		t.Errorf("InfoField: %q", v)
	}
}

func TestRDBVersion(t *testing.T) {
	for v, want := range map[string]int{"8.0.1": 12, "7.4.0": 12, "7.2.4": 11, "7.0.15": 10, "6.2.6": 9, "5.0.7": 9, "4.0.14": 8, "3.2.1": 6, "": 6, "valkey": 6} {
		if got := RDBVersion(v); got != want {
			t.Errorf("RDBVersion(%q) = %d, want %d", v, got, want)
		}
	}
}

// TestDescribe: what a control connection's failure says, against real
// servers.
func TestDescribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := redistest.Start(t)
	s.Do(t, "CONFIG", "SET", "requirepass", "right")
	c := New(dial.Options{Addr: s.Addr, Password: "wrong", Timeout: 2 * time.Second})
	defer c.Close()
	_, err := IsCluster(ctx, c)
	if err == nil || !strings.Contains(Describe(s.Addr, err).Error(), "wrong password") {
		t.Errorf("wrong password: %v", Describe(s.Addr, err))
	}

	port := redistest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c2 := New(dial.Options{Addr: addr, Timeout: 2 * time.Second})
	defer c2.Close()
	_, err = IsCluster(ctx, c2)
	if err == nil || !strings.Contains(Describe(addr, err).Error(), "connection refused (is the server running") {
		t.Errorf("refused: %v", Describe(addr, err))
	}

	ok := New(dial.Options{Addr: s.Addr, Password: "right", Timeout: 2 * time.Second})
	defer ok.Close()
	if cl, err := IsCluster(ctx, ok); err != nil || cl {
		t.Errorf("IsCluster of a standalone server: %v %v", cl, err)
	}
	if off, err := MasterOffset(ctx, ok); err != nil || off < 0 {
		t.Errorf("MasterOffset: %d %v", off, err)
	}
}

// TestSentinelCredentialsRefused: sentinels that all refuse ferry's
// credentials give a permanent error that names sentinel_password (asking
// again gives the same answer, and the master's password is not the one to
// fix); the right credentials find the master.
func TestSentinelCredentialsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	master := redistest.Start(t)
	sen := redistest.StartSentinel(t, "mymaster", master.Addr)
	sc := redis.NewClient(&redis.Options{Addr: sen.Addr, Protocol: 2, DisableIdentity: true})
	defer sc.Close()
	if err := sc.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">sentpw", "on").Err(); err != nil {
		t.Fatal(err)
	}
	e := conf.Endpoint{Scheme: "sentinel", Hosts: []string{sen.Addr}, SentinelMaster: "mymaster", SentinelPassword: "wrong", DialTimeout: 2 * time.Second}
	_, err := SentinelMaster(ctx, e)
	if !fault.IsPermanent(err) || !errors.Is(err, dial.ErrAuth) || !strings.Contains(err.Error(), "sentinel_password") {
		t.Errorf("wrong sentinel password: %v (permanent %v)", err, fault.IsPermanent(err))
	}
	e.SentinelPassword = "sentpw"
	if addr, err := SentinelMaster(ctx, e); err != nil || addr != master.Addr {
		t.Errorf("right sentinel password: %q, %v; want %s", addr, err, master.Addr)
	}
	// One sentinel that does not answer: not every sentinel refused, so
	// the lookup stays a retry.
	e.SentinelPassword = "wrong"
	e.Hosts = append(e.Hosts, "127.0.0.1:1")
	if _, err := SentinelMaster(ctx, e); err == nil || fault.IsPermanent(err) {
		t.Errorf("one sentinel down, one refusing: %v, want a transient error", err)
	}
}
